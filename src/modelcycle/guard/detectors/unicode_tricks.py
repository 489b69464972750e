"""Unicode tricks used to hide instructions: folding for matching, invisible text, lookalikes.

``fold`` turns a text into the form the phrase rules match against (NFKC, lower
case, accents stripped, Cyrillic/Greek lookalikes mapped to Latin, zero-width and
other invisible characters removed) and keeps a map from each folded character
back to the original, so findings point into the text the caller sent. ASCII
text, the common case, is folded with one ``str.lower`` call and needs no map.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice

# Removed before matching: zero-width characters, bidi controls, word joiner and
# invisible operators, BOM, soft hyphen, variation selectors, tag characters, and
# combining marks (accents, "zalgo" stacks) left over after NFKC.
DELETABLE = re.compile(
    "[\u00ad\u034f\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
    "\ufe00-\ufe0f\U000e0000-\U000e007f\U000e0100-\U000e01ef"
    "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
)
# Runs of characters that have no business in a prompt's visible text.
TAG_RUN = re.compile("[\U000e0000-\U000e007f]+")
ZERO_WIDTH_RUN = re.compile("[\u200b-\u200d\u2060-\u2064\ufeff\u180e]+")
BIDI_RUN = re.compile("[\u202a-\u202e\u2066-\u2069]+")
PRIVATE_USE_RUN = re.compile("[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd]+")
# A Latin letter next to a Cyrillic or Greek one inside a word.
MIXED_SCRIPT = re.compile(
    "[A-Za-z][\u0370-\u03ff\u0400-\u052f]|[\u0370-\u03ff\u0400-\u052f][A-Za-z]"
)
WORD_AROUND = re.compile(r"\w{1,64}")
# Any character the invisible-text and mixed-script checks look at (one scan rules them out).
SUSPECT = re.compile(
    "[\u0370-\u03ff\u0400-\u052f\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff"
    "\ue000-\uf8ff\U000e0000-\U000e007f\U000f0000-\U0010fffd]"
)

MAX_TRICKS = 32
"""Findings of one kind reported per text (a text full of them needs no more to be refused)."""

_BLACK_FLAG = "\U0001f3f4"  # emoji subdivision flags are this followed by tag characters

# Lookalikes a reader takes for Latin letters (Unicode confusables, the usual suspects).
_CONFUSABLES = {
    "\u0430": "a", "\u0432": "b", "\u0435": "e", "\u0451": "e", "\u043a": "k", "\u043c": "m",
    "\u043d": "h", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0442": "t", "\u0443": "y",
    "\u0445": "x", "\u0455": "s", "\u0456": "i", "\u0457": "i", "\u0458": "j", "\u04bb": "h",
    "\u0501": "d", "\u051b": "q", "\u051d": "w", "\u0261": "g", "\u0251": "a", "\u0131": "i",
    "\u0410": "a", "\u0412": "b", "\u0415": "e", "\u041a": "k", "\u041c": "m", "\u041d": "h",
    "\u041e": "o", "\u0420": "p", "\u0421": "c", "\u0422": "t", "\u0425": "x", "\u0423": "y",
    "\u0405": "s", "\u0406": "i", "\u0408": "j", "\u04ba": "h", "\u03b1": "a", "\u03b2": "b",
    "\u03b5": "e", "\u03b9": "i", "\u03ba": "k", "\u03bd": "v", "\u03bf": "o", "\u03c1": "p",
    "\u03c4": "t", "\u03c5": "u", "\u03c7": "x", "\u03b3": "y", "\u0391": "a", "\u0392": "b",
    "\u0395": "e", "\u0396": "z", "\u0397": "h", "\u0399": "i", "\u039a": "k", "\u039c": "m",
    "\u039d": "n", "\u039f": "o", "\u03a1": "p", "\u03a4": "t", "\u03a5": "y", "\u03a7": "x",
    "\u0130": "i", "\u00df": "s", "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u02bc": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"', "\u2013": "-",
    "\u2014": "-", "\u00a0": " ",
}  # fmt: skip


def _fold_table() -> dict[int, str]:
    """One character to one character: accented Latin letters and lookalikes."""
    table: dict[int, str] = {}
    for start, end in ((0xC0, 0x250), (0x1E00, 0x1F00)):
        for code in range(start, end):
            decomposed = unicodedata.normalize("NFD", chr(code))
            base = decomposed[0]
            if len(decomposed) > 1 and base.isascii() and base.isalpha():
                table[code] = base.lower()
    table.update({ord(k): v for k, v in _CONFUSABLES.items()})
    return table


FOLD_TABLE = _fold_table()
_CONFUSABLE_CODES = frozenset(ord(k) for k in _CONFUSABLES if k.isalpha())
# The characters FOLD_TABLE rewrites, as strings: a text is folded by one ``str.replace`` per
# distinct such character it holds (``str.translate`` would look every character of a
# non-ASCII text up in a dict). Every replacement is ASCII, so replacements never chain.
_FOLD_CHARS = {chr(code): out for code, out in FOLD_TABLE.items()}
NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
ASCII_RUN = re.compile(r"[\x00-\x7f]+")
# Runs of spaces and tabs become one space, so "ignore   all" reads like "ignore all".
BLANK_RUN = re.compile(r"[ \t]{2,}|\t")


@dataclass(frozen=True, slots=True)
class Folded:
    """A folded text and the way back to the original's offsets.

    The map is a list of segments (as many as there are edits, not characters):
    segment ``k`` starts at folded index ``starts[k]`` and at original index
    ``origins[k]``; it maps one-for-one, or, when ``widths[k]`` is 1, all its
    characters come from the one original character (an expanded ligature).
    """

    text: str
    starts: tuple[int, ...] = ()
    origins: tuple[int, ...] = ()
    widths: tuple[int, ...] = ()
    inner: Folded | None = None
    """A fold applied before this one (blank collapsing runs on the folded text)."""

    def index(self, position: int) -> int:
        """The original index of folded character ``position``."""
        if self.starts:
            k = max(bisect_right(self.starts, position) - 1, 0)
            step = position - self.starts[k] if self.widths[k] == 0 else 0
            position = self.origins[k] + step
        return self.inner.index(position) if self.inner is not None else position

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original ``[start, end)`` of the folded ``[start, end)`` (end exclusive)."""
        if not self.starts and self.inner is None:
            return start, end
        if not self.text:
            return 0, 0
        if end <= start:
            at = self.index(min(start, len(self.text) - 1))
            return at, at
        return self.index(start), self.index(end - 1) + 1


class _Builder:
    """Collects folded pieces and their segments."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.starts: list[int] = []
        self.origins: list[int] = []
        self.widths: list[int] = []
        self.size = 0

    def add(self, piece: str, origin: int, one_for_one: bool = True) -> None:
        if not piece:
            return
        self.pieces.append(piece)
        self.starts.append(self.size)
        self.origins.append(origin)
        self.widths.append(0 if one_for_one else 1)
        self.size += len(piece)

    def build(self, inner: Folded | None = None) -> Folded:
        return Folded(
            "".join(self.pieces), tuple(self.starts), tuple(self.origins), tuple(self.widths), inner
        )


@lru_cache(maxsize=8192)
def fold_char(char: str) -> str:
    """The folded form of one character (possibly empty, possibly several characters)."""
    if DELETABLE.fullmatch(char):
        return ""
    out = unicodedata.normalize("NFKC", char).translate(FOLD_TABLE).lower()
    if out.isascii():
        return out
    out = unicodedata.normalize("NFD", out)
    return "".join(c for c in out if not unicodedata.combining(c)).translate(FOLD_TABLE)


def non_ascii(text: str) -> str:
    """``text`` without its ASCII characters: what the big character classes need to scan."""
    return ASCII_RUN.sub("", text)


def _fold_simple(text: str) -> str | None:
    """Fold a text one-for-one if it can be (nothing to delete, NFKC keeps the length)."""
    rare = non_ascii(text)
    if DELETABLE.search(rare) is not None:
        return None
    if not unicodedata.is_normalized("NFKC", text):
        normal = unicodedata.normalize("NFKC", text)
        if len(normal) != len(text):
            return None
        text, rare = normal, non_ascii(normal)
    for char in _FOLD_CHARS.keys() & set(rare):
        text = text.replace(char, _FOLD_CHARS[char])
    out = text.lower()
    return out if len(out) == len(text) else None


def fold(text: str) -> Folded:
    """The text the rules match against, with a map back to ``text``'s offsets."""
    folded = _fold(text)
    if "  " not in folded.text and "\t" not in folded.text:
        return folded
    builder = _Builder()
    cursor = 0
    for match in BLANK_RUN.finditer(folded.text):
        builder.add(folded.text[cursor : match.start()] + " ", cursor)
        cursor = match.end()
    builder.add(folded.text[cursor:], cursor)
    return builder.build(folded if folded.starts else None)


def _fold(text: str) -> Folded:
    if text.isascii():
        return Folded(text.lower())
    simple = _fold_simple(text)
    if simple is not None:
        return Folded(simple)
    # Character by character, but only for the non-ASCII runs (usually a few short ones).
    builder = _Builder()
    cursor = 0
    for match in NON_ASCII_RUN.finditer(text):
        start, end = match.span()
        if start > cursor:
            builder.add(text[cursor:start].lower(), cursor)
        run = _fold_simple(match.group())
        if run is not None:
            builder.add(run, start)
        else:
            for index in range(start, end):
                piece = fold_char(text[index])
                builder.add(piece, index, len(piece) == 1)
        cursor = end
    if cursor < len(text):
        builder.add(text[cursor:].lower(), cursor)
    return builder.build()


@dataclass(frozen=True, slots=True)
class Trick:
    """An invisible or lookalike character run in the original text."""

    type: str
    start: int
    end: int
    score: float


def invisible_runs(text: str) -> list[Trick]:
    """Tag characters, zero-width characters inside words, bidi controls, private use."""
    found: list[Trick] = []
    for match in islice(TAG_RUN.finditer(text), MAX_TRICKS):
        if not _is_emoji_flag(text, match.start(), match.end()):
            found.append(Trick("INVISIBLE_TEXT", match.start(), match.end(), 0.95))
    zero_width = 0
    for match in ZERO_WIDTH_RUN.finditer(text):
        start, end = match.start(), match.end()
        inside_word = (
            start > 0
            and end < len(text)
            and text[start - 1].isascii()
            and text[start - 1].isalnum()
            and text[end].isalnum()
        )
        if end - start >= 3:
            found.append(Trick("INVISIBLE_TEXT", start, end, 0.9))
        elif inside_word and text[start] != "\u200d":
            found.append(Trick("INVISIBLE_TEXT", start, end, 0.8))
        else:
            continue
        zero_width += 1
        if zero_width >= MAX_TRICKS:
            break
    for match in islice(BIDI_RUN.finditer(text), MAX_TRICKS):
        override = "\u202d" in match.group() or "\u202e" in match.group()
        found.append(Trick("INVISIBLE_TEXT", match.start(), match.end(), 0.6 if override else 0.4))
    for match in islice(PRIVATE_USE_RUN.finditer(text), MAX_TRICKS):
        score = 0.7 if match.end() - match.start() >= 8 else 0.4
        found.append(Trick("INVISIBLE_TEXT", match.start(), match.end(), score))
    return found


def _is_emoji_flag(text: str, start: int, end: int) -> bool:
    """A subdivision flag (England, Scotland, Wales): black flag, up to 6 tags, cancel tag."""
    return (
        start > 0
        and text[start - 1] == _BLACK_FLAG
        and end - start <= 7
        and text[end - 1] == "\U000e007f"
    )


def hidden_tag_text(text: str, start: int, end: int) -> str:
    """What a run of tag characters spells in ASCII (the "ASCII smuggling" trick)."""
    return "".join(chr(ord(c) - 0xE0000) for c in text[start:end] if 0xE0020 <= ord(c) <= 0xE007E)


def mixed_script_words(text: str) -> list[Trick]:
    """Words mixing Latin with Cyrillic or Greek letters (``paypal`` spelt with a Cyrillic a)."""
    words: dict[tuple[int, int], bool] = {}
    for match in MIXED_SCRIPT.finditer(text):
        around = _word_at(text, match.start())
        if around is not None and around not in words:
            word = text[around[0] : around[1]]
            words[around] = all(ord(c) < 128 or ord(c) in _CONFUSABLE_CODES for c in word)
            if len(words) >= MAX_TRICKS:
                break
    many = len(words) >= 3
    found = []
    for (start, end), disguised in words.items():
        score = 0.85 if many and disguised else (0.6 if disguised else 0.4)
        found.append(Trick("CONFUSABLE", start, end, score))
    return found


def _word_at(text: str, index: int) -> tuple[int, int] | None:
    start = max(0, index - 63)
    for match in WORD_AROUND.finditer(text, start, min(len(text), index + 66)):
        if match.start() <= index < match.end():
            return match.start(), match.end()
    return None
