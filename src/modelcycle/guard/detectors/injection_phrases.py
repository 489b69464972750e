"""Phrase rules for injection and jailbreak, and how their hits add up to a score.

Each rule is a linear-time pattern over the folded text (lower case, no accents,
lookalikes mapped), with a weight: how sure one hit makes us on its own. Strong
rules are whole constructions ("ignore" + "all previous" + "instructions");
weak ones are single signals ("uncensored", "hypothetically") that only fire
together. Hits of one kind combine as independent evidence (noisy-OR) within a
window of text, and other kinds lend half their weight, so a long benign text
with a weak word here and there stays quiet.

A rule only runs when one of its ``gate`` words is in the text (and one of its
``requires`` words, if any), which keeps the cost on ordinary prompts to a few set
operations over the text's words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

INJECTION = "PROMPT_INJECTION"
JAILBREAK = "JAILBREAK"
EXTRACTION = "SYSTEM_PROMPT_EXTRACTION"
KINDS = (INJECTION, JAILBREAK, EXTRACTION)

WORD = re.compile(r"[a-z0-9]+")
# ``WORD``'s tokens at C speed: non-ASCII characters become "?" when encoded, then every
# byte outside [a-z0-9] becomes a space and ``split`` cuts there.
_WORD_BYTES = bytes(c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256))


def words_of(text: str) -> set[str]:
    """The distinct ``WORD`` tokens of ``text`` (what ``set(WORD.findall(text))`` gives)."""
    return set(text.encode("ascii", "replace").translate(_WORD_BYTES).decode("ascii").split())


SCOPE_AFTER = 48
"""Characters after a match where its scope words may still follow ("instructions above")."""
VETO_FACTOR = 0.3
"""What a hit keeps of its weight when its veto pattern matches ("how do I set a system prompt")."""
VETO_BEFORE = 40
"""Characters before a match where its veto words may stand."""
MAX_HITS_PER_RULE = 16
REACH = 400
"""Most characters any rule's pattern can span (a test holds every pattern to it): a failed
match is remembered by the ``REACH`` characters it started at, so a text repeating one
phrase a hundred thousand times costs one attempt, not a hundred thousand."""
WINDOW = 4000
"""Characters over which weak signals add up; windows overlap by half."""
SUPPORT = 0.7
"""Share of another kind's evidence that counts towards this kind."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One phrase pattern, how much a hit weighs, and when it counts more or less."""

    name: str
    kind: str
    weight: float
    gate: frozenset[str]
    """Words of which one must occur in the text for the rule to run."""
    pattern: re.Pattern[str]
    anchors: dict[str, tuple[int, ...]] | None
    """Anchor word -> how far before it a lead phrase starts; None: scan the whole text."""
    needs: str = ""
    """Characters of which one must occur in the text for the rule to run."""
    requires: frozenset[str] = frozenset()
    """Words of which one must also occur (a word the rest of the pattern cannot do without)."""
    scope: re.Pattern[str] | None = None
    """Found in the match or just after it: the hit weighs ``scoped_weight`` instead."""
    scoped_weight: float = 0.0
    veto: re.Pattern[str] | None = None
    """Found in the match or just before it: the hit keeps ``VETO_FACTOR`` of its weight."""


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A rule as written in the rule tables, before compiling.

    ``lead`` lists the literal phrases a match starts with (``|``-separated); the
    pattern is tried only where one of them occurs (found through its least common
    word), which is what keeps the rules cheap: a regex that begins with a long
    alternation is otherwise tried at every position. A rule without ``lead``
    scans the whole text with ``rest`` and should begin with a literal or a small
    character class; ``gate`` then lists words one of which must occur for it to
    run. Any rule may list ``needs``, characters one of which must occur, and
    ``requires``, words one of which must occur: cheap checks that skip the
    pattern on texts it cannot match.
    """

    name: str
    kind: str
    weight: float
    lead: str
    rest: str
    scope: str | None = None
    scoped_weight: float = 0.0
    veto: str | None = None
    gate: str = ""
    needs: str = ""
    requires: str = ""


# Words too common to anchor a phrase on (the phrase is found through a rarer one).
COMMON = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "do", "i", "in", "is", "it", "me", "my",
        "no", "not", "of", "on", "or", "so", "t", "the", "to", "we", "you", "your",
        "al", "de", "del", "el", "en", "es", "la", "las", "lo", "los", "mi", "para", "por",
        "que", "se", "su", "sus", "te", "tu", "un", "una", "y",
    }
)  # fmt: skip


def _anchor(phrase: str) -> tuple[str, int]:
    """The phrase's least common word (by a crude measure) and where in the phrase it starts."""
    tokens = [(m.group(), m.start()) for m in WORD.finditer(phrase)]
    rare = [t for t in tokens if t[0] not in COMMON] or tokens
    return max(rare, key=lambda t: len(t[0]))


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Compiled rules, indexed so that picking the ones a text can match is a few set operations."""

    rules: tuple[Rule, ...]
    index: dict[str, frozenset[int]]
    """Gate word -> the rules it lets run."""
    keys: frozenset[str]
    always: frozenset[int]
    """Rules without gate words: they run on every text (their ``needs`` permitting)."""
    required: dict[str, frozenset[int]]
    """``requires`` word -> the rules it satisfies."""
    unrequired: frozenset[int]
    """Rules without ``requires`` words."""
    needs: str
    """Every character some rule ``needs`` (looked for once per text)."""

    @classmethod
    def of(cls, rules: Sequence[Rule]) -> RuleSet:
        """Index ``rules`` by their gate and ``requires`` words."""
        index: dict[str, set[int]] = {}
        required: dict[str, set[int]] = {}
        for position, rule in enumerate(rules):
            for word in rule.gate:
                index.setdefault(word, set()).add(position)
            for word in rule.requires:
                required.setdefault(word, set()).add(position)
        return cls(
            tuple(rules),
            {word: frozenset(positions) for word, positions in index.items()},
            frozenset(index),
            frozenset(p for p, rule in enumerate(rules) if not rule.gate),
            {word: frozenset(positions) for word, positions in required.items()},
            frozenset(p for p, rule in enumerate(rules) if not rule.requires),
            "".join(sorted({char for rule in rules for char in rule.needs})),
        )

    def candidates(self, words: frozenset[str] | set[str]) -> list[Rule]:
        """The rules whose gate words (and ``requires`` words, if any) occur in ``words``."""
        gated = self.always.union(*map(self.index.__getitem__, self.keys & words))
        allowed = self.unrequired.union(
            *map(self.required.__getitem__, self.required.keys() & words)
        )
        return list(map(self.rules.__getitem__, sorted(gated & allowed)))


def compile_rules(specs: Iterable[RuleSpec]) -> tuple[Rule, ...]:
    """Compile rule tables (at import time: every pattern is a module constant)."""
    rules = []
    for spec in specs:
        phrases = [p for p in spec.lead.split("|") if p]
        anchors: dict[str, tuple[int, ...]] | None = None
        if phrases:
            alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
            pattern = f"(?:{alternatives}){spec.rest}"
            found: dict[str, set[int]] = {}
            for phrase in phrases:
                word, offset = _anchor(phrase)
                found.setdefault(word, set()).add(offset)
            anchors = {word: tuple(sorted(offsets)) for word, offsets in found.items()}
            gate = frozenset(anchors)
        else:
            pattern, gate = spec.rest, frozenset(spec.gate.split())
        rules.append(
            Rule(
                spec.name,
                spec.kind,
                spec.weight,
                gate,
                re.compile(pattern),
                anchors,
                spec.needs,
                frozenset(spec.requires.split()),
                re.compile(spec.scope) if spec.scope else None,
                spec.scoped_weight,
                re.compile(spec.veto) if spec.veto else None,
            )
        )
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class Hit:
    """One rule matched ``[start, end)`` of the folded text."""

    rule: str
    kind: str
    weight: float
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """How sure we are of one kind of attack, and where its evidence lies (folded offsets)."""

    kind: str
    score: float
    start: int
    end: int


def find_hits(rules: RuleSet, text: str, words: frozenset[str] | set[str]) -> list[Hit]:
    """Every hit of every rule whose gate words occur in ``words``."""
    hits: list[Hit] = []
    starts: dict[str, list[int]] = {}
    present: set[str] | None = None
    for rule in rules.candidates(words):
        if rule.needs:
            if present is None:
                present = {char for char in rules.needs if char in text}
            if present.isdisjoint(rule.needs):
                continue
        matches: Iterable[re.Match[str]]
        if rule.anchors is not None:
            matches = _anchored(rule.pattern, rule.anchors, text, words, starts)
        else:
            matches = rule.pattern.finditer(text)
        for found, match in enumerate(matches, start=1):
            hits.append(_hit(rule, text, match))
            if found >= MAX_HITS_PER_RULE:
                break
    return hits


PREFIX = 32
"""Characters of a failed match's context looked at first: contexts rarely share them, and
comparing those is cheaper than slicing and hashing ``REACH`` characters."""


def _anchored(
    pattern: re.Pattern[str],
    anchors: dict[str, tuple[int, ...]],
    text: str,
    words: frozenset[str] | set[str],
    starts: dict[str, list[int]],
) -> list[re.Match[str]]:
    """Matches of an anchored rule, tried where its lead phrases may start."""
    ordered = _positions(anchors, text, words, starts)
    if not ordered:
        return []
    matches = []
    # Failed contexts by their first ``PREFIX`` characters: the position of the first one
    # (its context is sliced only when a second context shares the prefix), then their set.
    failed: dict[str, int | set[str]] = {}
    for position in ordered:
        prefix = text[position : position + PREFIX]
        seen = failed.get(prefix)
        context = ""
        if seen is not None:
            if isinstance(seen, int):
                seen = failed[prefix] = {text[seen : seen + REACH]}
            context = text[position : position + REACH]
            if context in seen:
                continue
        match = pattern.match(text, position)
        if match is None:
            if isinstance(seen, set):
                seen.add(context)
            else:
                failed[prefix] = position
        else:
            matches.append(match)
            if len(matches) >= MAX_HITS_PER_RULE:
                break
    return matches


def _positions(
    anchors: dict[str, tuple[int, ...]],
    text: str,
    words: frozenset[str] | set[str],
    starts: dict[str, list[int]],
) -> list[int]:
    """Where an anchored rule's lead phrases may start, in order, each at a word's start."""
    present = anchors.keys() & words
    if len(present) == 1 and anchors[next(iter(present))] == (0,):
        # The usual case: one anchor word, leading its phrases; its whole-word starts come
        # in order and already start a word.
        return _starts(text, next(iter(present)), starts)
    positions: set[int] = set()
    for word in present:
        cached = _starts(text, word, starts)
        for offset in anchors[word]:
            if offset:
                positions.update(p - offset for p in cached if p >= offset)
            else:
                positions.update(cached)
    # The anchor word is whole, but the phrase must start a word too.
    return [p for p in sorted(positions) if p == 0 or not text[p - 1].isalnum()]


def _starts(text: str, word: str, cache: dict[str, list[int]]) -> list[int]:
    """``_word_starts`` through a per-text cache (rules share anchor words)."""
    found = cache.get(word)
    if found is None:
        found = cache[word] = _word_starts(text, word)
    return found


def _word_starts(text: str, word: str) -> list[int]:
    """Where ``word`` occurs as a whole word (``str.find`` runs at C speed)."""
    out = []
    size = len(word)
    index = text.find(word)
    while index >= 0:
        end = index + size
        if (index == 0 or not text[index - 1].isalnum()) and (
            end == len(text) or not text[end].isalnum()
        ):
            out.append(index)
        index = text.find(word, end)
    return out


def _hit(rule: Rule, text: str, match: re.Match[str]) -> Hit:
    weight = rule.weight
    if rule.scope is not None and rule.scope.search(text, match.start(), match.end() + SCOPE_AFTER):
        weight = rule.scoped_weight
    if rule.veto is not None and rule.veto.search(
        text, max(0, match.start() - VETO_BEFORE), match.end()
    ):
        weight *= VETO_FACTOR
    return Hit(rule.name, rule.kind, weight, match.start(), match.end())


def combine(hits: Sequence[Hit]) -> list[Verdict]:
    """The best score per kind over any window of the text, with the span of its evidence."""
    windows: dict[int, list[Hit]] = {}
    half = WINDOW // 2
    for hit in hits:
        first = hit.start // half
        for index in {max(first - 1, 0), first}:
            windows.setdefault(index, []).append(hit)
    best: dict[str, Verdict] = {}
    for window_hits in windows.values():
        for verdict in _window_verdicts(window_hits):
            current = best.get(verdict.kind)
            if current is None or verdict.score > current.score:
                best[verdict.kind] = verdict
    return [best[kind] for kind in KINDS if kind in best]


def _window_verdicts(hits: Sequence[Hit]) -> list[Verdict]:
    strongest: dict[str, dict[str, float]] = {}
    for hit in hits:
        per_rule = strongest.setdefault(hit.kind, {})
        per_rule[hit.rule] = max(per_rule.get(hit.rule, 0.0), hit.weight)
    own = {kind: _noisy_or(weights.values()) for kind, weights in strongest.items()}
    verdicts = []
    for kind, score in own.items():
        doubt = 1.0 - score
        for other, other_score in own.items():
            if other != kind:
                doubt *= 1.0 - SUPPORT * other_score
        spans = [(h.start, h.end) for h in hits if h.kind == kind and h.weight > 0]
        if not spans:
            continue
        start = min(s for s, _ in spans)
        end = max(e for _, e in spans)
        verdicts.append(Verdict(kind, 1.0 - doubt, start, end))
    return verdicts


def _noisy_or(weights: Iterable[float]) -> float:
    doubt = 1.0
    for weight in weights:
        doubt *= 1.0 - weight
    return 1.0 - doubt
