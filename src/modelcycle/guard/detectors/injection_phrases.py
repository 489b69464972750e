"""Phrase rules for injection and jailbreak, and how their hits add up to a score.

Each rule is a linear-time pattern over the folded text (lower case, no accents,
lookalikes mapped), with a weight: how sure one hit makes us on its own. Strong
rules are whole constructions ("ignore" + "all previous" + "instructions");
weak ones are single signals ("uncensored", "hypothetically") that only fire
together. Hits of one kind combine as independent evidence (noisy-OR) within a
window of text, and other kinds lend half their weight, so a long benign text
with a weak word here and there stays quiet.

A rule only runs when one of its ``gate`` words is in the text, which keeps the
cost on ordinary prompts to a set lookup per rule.
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
    """Compiled rules and an index from gate word to the rules it lets run."""

    rules: tuple[Rule, ...]
    index: dict[str, tuple[int, ...]]
    keys: frozenset[str]
    always: tuple[int, ...]
    """Rules without gate words: they run on every text (their ``needs`` permitting)."""

    @classmethod
    def of(cls, rules: Sequence[Rule]) -> RuleSet:
        """Index ``rules`` by their gate words."""
        index: dict[str, list[int]] = {}
        always = []
        for position, rule in enumerate(rules):
            if not rule.gate:
                always.append(position)
            for word in rule.gate:
                index.setdefault(word, []).append(position)
        return cls(
            tuple(rules),
            {word: tuple(positions) for word, positions in index.items()},
            frozenset(index),
            tuple(always),
        )

    def candidates(self, words: frozenset[str] | set[str]) -> list[Rule]:
        """The rules whose gate words occur in ``words``, in table order."""
        chosen = set(self.always)
        for word in self.keys & words:
            chosen.update(self.index[word])
        return [self.rules[position] for position in sorted(chosen)]


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
    for rule in rules.candidates(words):
        if rule.requires and rule.requires.isdisjoint(words):
            continue
        if rule.needs and not any(char in text for char in rule.needs):
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


def _anchored(
    pattern: re.Pattern[str],
    anchors: dict[str, tuple[int, ...]],
    text: str,
    words: frozenset[str] | set[str],
    starts: dict[str, list[int]],
) -> list[re.Match[str]]:
    """Matches of an anchored rule, tried where its lead phrases may start."""
    positions: set[int] = set()
    for word, offsets in anchors.items():
        if word not in words:
            continue
        cached = starts.get(word)
        if cached is None:
            cached = starts[word] = _word_starts(text, word)
        for offset in offsets:
            positions.update(p - offset for p in cached if p >= offset)
    matches = []
    failed: set[str] = set()
    for position in sorted(positions):
        if position > 0 and text[position - 1].isalnum():
            continue  # the anchor word is whole, but the phrase must start a word too
        context = text[position : position + REACH]
        if context in failed:
            continue
        match = pattern.match(text, position)
        if match is None:
            failed.add(context)
        else:
            matches.append(match)
            if len(matches) >= MAX_HITS_PER_RULE:
                break
    return matches


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
