"""Phrase lists matched by whole words on normalised text (toxicity, topics).

Text is normalised before matching: accents folded (``maricón`` -> ``maricon``),
case folded, compatibility forms unified (full-width letters, ligatures) and a
light leetspeak undone (``0 1 3 @ $`` -> ``o i e a s``). Matching is by whole
tokens (runs of ``a-z0-9`` after normalisation), never by substring, so
``class``, ``assassin`` and ``Scunthorpe`` match nothing: the Scunthorpe
problem is avoided by construction. A word written with a letter stretched
(``fuuuuck``) is tried with the run squeezed too.

Pattern syntax, shared by the lexicon files and user options:

* words separated by spaces must follow each other in the text (punctuation
  between them is ignored: ``you're`` is the tokens ``you re``);
* ``(a|b c|)`` is a choice, the empty choice included: ``(i|we) will kill you``;
* a final ``*`` matches any word starting with the last word: ``vaccin*``.

Finding spans are offsets into the original text, whatever normalisation did.
"""

from __future__ import annotations

import itertools
import re
import string
import unicodedata
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from modelcycle.errors import InvalidInput

P = TypeVar("P")

TOKEN_RE = re.compile(r"[a-z0-9]+")
"""A word of normalised text."""
RUN_RE = re.compile("|".join(letter * 3 for letter in string.ascii_lowercase))
"""A letter written three times or more in a row (a stretched word)."""
GROUP_RE = re.compile(r"\(([^()]*)\)")
"""One ``(a|b|c)`` choice of a pattern (no nesting)."""

LEET = {"0": "o", "1": "i", "3": "e", "@": "a", "$": "s"}
_ASCII_TABLE = str.maketrans({**{c: c.lower() for c in string.ascii_uppercase}, **LEET})

MAX_EXPANSIONS = 10_000
"""Most phrases one pattern may expand into (choices multiply)."""
MAX_PATTERN_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Normalised:
    """A text after normalisation, and where each of its characters came from."""

    text: str
    index: tuple[int, ...] | None
    """Offset in the original text of each character; ``None``: the same offsets."""

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that ``text[start:end]`` came from."""
        if self.index is None:
            return start, end
        return self.index[start], self.index[end - 1] + 1


def _fold(char: str) -> str:
    decomposed = unicodedata.normalize("NFKD", char)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold().translate(_ASCII_TABLE)


def normalise(text: str) -> Normalised:
    """Fold accents, case and light leetspeak, keeping a map back to the original offsets."""
    if text.isascii():  # the common case: one C-level pass, offsets unchanged
        return Normalised(text.translate(_ASCII_TABLE), None)
    folded = {ord(char): _fold(char) for char in set(text) if not char.isascii()}
    table: dict[int, str] = {**_ASCII_TABLE, **folded}
    out = text.translate(table)
    if all(len(piece) == 1 for piece in folded.values()):
        return Normalised(out, None)
    index = tuple(
        offset for offset, char in enumerate(text) for _ in range(len(table.get(ord(char), char)))
    )
    return Normalised(out, index)


def words(text: str) -> list[str]:
    """The normalised words of ``text`` (how patterns and allow-lists are compared)."""
    return TOKEN_RE.findall(normalise(text).text)


def squeeze(word: str) -> list[str]:
    """``word`` with letters written 3+ times in a row cut to two, then to one."""
    if not RUN_RE.search(word):
        return []
    twice = "".join(letter * min(2, len(list(run))) for letter, run in itertools.groupby(word))
    once = "".join(letter for letter, _ in itertools.groupby(word))
    return [candidate for candidate in dict.fromkeys((twice, once)) if candidate != word]


def expand(pattern: str, *, where: str = "pattern") -> list[str]:
    """Every phrase a pattern with ``(a|b)`` choices stands for."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidInput(f"{where}: longer than {MAX_PATTERN_CHARS} characters")
    if pattern.count("(") != pattern.count(")"):
        raise InvalidInput(f"{where}: unbalanced parentheses in {pattern!r}")
    parts: list[list[str]] = []
    cursor = 0
    for match in GROUP_RE.finditer(pattern):
        parts.append([pattern[cursor : match.start()]])
        parts.append(match.group(1).split("|"))
        cursor = match.end()
    parts.append([pattern[cursor:]])
    total = 1
    for choices in parts:
        total *= len(choices)
    if total > MAX_EXPANSIONS:
        raise InvalidInput(f"{where}: {pattern!r} expands to more than {MAX_EXPANSIONS} phrases")
    return ["".join(combo) for combo in itertools.product(*parts)]


@dataclass(frozen=True, slots=True)
class PhraseMatch(Generic[P]):
    """One phrase found: its span in the original text and what it was listed with."""

    start: int
    end: int
    payload: P
    words: tuple[str, ...]


@dataclass(slots=True)
class _Node(Generic[P]):
    children: dict[str, _Node[P]] = field(default_factory=dict)
    payload: P | None = None
    prefixes: dict[int, dict[str, P]] = field(default_factory=dict)
    """Words ending a ``word*`` pattern here: length -> prefix -> payload."""

    def prefix_hit(self, word: str) -> P | None:
        for length, table in self.prefixes.items():
            if len(word) >= length:
                hit = table.get(word[:length])
                if hit is not None:
                    return hit
        return None


class PhraseSet(Generic[P]):
    """Phrases (with a payload each) found in a text by whole words, longest first.

    Matching walks a word trie from each word of the text: linear in the text
    for a fixed set, with no regular expression over user-supplied patterns.
    """

    def __init__(self) -> None:
        self._root: _Node[P] = _Node()
        self.size = 0

    def add(self, pattern: str, payload: P, *, where: str = "pattern") -> None:
        """Add every phrase ``pattern`` expands to; a later duplicate replaces the payload."""
        for phrase in expand(pattern, where=where):
            self._add_phrase(phrase, payload, where)

    def _add_phrase(self, phrase: str, payload: P, where: str) -> None:
        phrase = phrase.strip()
        prefix = phrase.endswith("*")
        tokens = words(phrase.rstrip("*"))
        if not tokens:
            raise InvalidInput(f"{where}: {phrase!r} has no letters or digits to match")
        node = self._root
        for token in tokens[:-1]:
            node = node.children.setdefault(token, _Node())
        last = tokens[-1]
        if prefix:
            node.prefixes.setdefault(len(last), {})[last] = payload
        else:
            node.children.setdefault(last, _Node()).payload = payload
        self.size += 1

    def find(self, text: str) -> list[PhraseMatch[P]]:
        """Every listed phrase in ``text``, the longest at each place, never overlapping."""
        normalised = normalise(text)
        tokens = [(m.start(), m.end(), m.group()) for m in TOKEN_RE.finditer(normalised.text)]
        stretched = RUN_RE.search(normalised.text) is not None
        found: list[PhraseMatch[P]] = []
        i = 0
        while i < len(tokens):
            hit = self._longest(tokens, i, stretched)
            if hit is None:
                i += 1
                continue
            last, payload = hit
            matched = tuple(token[2] for token in tokens[i : last + 1])
            start, end = normalised.original_span(tokens[i][0], tokens[last][1])
            found.append(PhraseMatch(start, end, payload, matched))
            i = last + 1
        return found

    def _longest(
        self, tokens: list[tuple[int, int, str]], first: int, stretched: bool
    ) -> tuple[int, P] | None:
        """(index of the last word, payload) of the longest phrase starting at ``first``."""
        best: tuple[int, P] | None = None
        node: _Node[P] | None = self._root
        j = first
        while node is not None and j < len(tokens):
            word = tokens[j][2]
            candidates = [word, *squeeze(word)] if stretched else [word]
            following: _Node[P] | None = None
            for candidate in candidates:
                hit = node.prefix_hit(candidate)
                if hit is not None:
                    best = (j, hit)
                following = node.children.get(candidate)
                if following is not None:
                    break
            if following is not None and following.payload is not None:
                best = (j, following.payload)
            node = following
            j += 1
        return best
