"""The vocabulary of scoring: what a scorer reads, what it returns, and the protocol.

A *scorer* turns one sample (the model's output, the expected answer when the
dataset has one, the prompt, and what the run measured) into a *score*. A
scorer that cannot score a sample (no reference, a measure that was not
taken, a model that failed to load) returns a score holding an ``error`` and
no value: an error is never counted as a 0, so aggregates stay honest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

ScorerKind = Literal["binary", "continuous", "measure"]
"""``binary``: 0 or 1 (pass/fail, compared with McNemar's test); ``continuous``: in
[0, 1]; ``measure``: any finite number >= 0 in its own unit (milliseconds, dollars)."""

SCORER_KINDS: tuple[ScorerKind, ...] = ("binary", "continuous", "measure")

Prompt = str | Sequence[Mapping[str, Any]]
"""A completion prompt, or chat messages (``{"role": ..., "content": ...}``)."""


@dataclass(frozen=True, slots=True)
class ScoringInput:
    """One sample as a scorer sees it, after the target answered."""

    output: str
    """What the target answered (the message content)."""
    expected: str | None = None
    """The dataset's reference answer; ``None`` when the sample has none."""
    input: Prompt = ""
    """What the target was asked."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """The sample's metadata (tags, category, language...)."""
    latency_ms: float | None = None
    """How long the target took to answer; ``None`` when not measured."""
    cost: float | None = None
    """What the answer cost, in the deployment's currency; ``None`` when unknown."""


@dataclass(frozen=True, slots=True)
class Score:
    """A scorer's verdict on one sample: a value, or an error saying why there is none."""

    value: float | None
    error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    """JSON-ready evidence for the value (what matched, the raw cosine...); never secrets."""

    def __post_init__(self) -> None:
        if (self.value is None) == (self.error is None):
            raise ValueError("a Score holds either a value or an error, not both or neither")

    @classmethod
    def of(cls, value: float, **details: Any) -> Score:
        """A scored sample."""
        return cls(float(value), None, details)

    @classmethod
    def failed(cls, error: str, **details: Any) -> Score:
        """A sample the scorer could not score, and why."""
        return cls(None, error, details)

    @property
    def ok(self) -> bool:
        """Whether the sample was scored."""
        return self.error is None


@runtime_checkable
class Scorer(Protocol):
    """Scores samples. Must be thread-safe; may hold a model, loaded on first use.

    Subclass it explicitly to inherit ``score_many``; a structural implementation
    must define ``score_many`` itself.
    """

    name: str
    """The registered name, e.g. ``rouge_l``."""
    kind: ScorerKind
    needs_reference: bool
    """Whether samples need an ``expected`` answer (those without one get an error)."""
    higher_is_better: bool
    """Direction of a win in a comparison: ``False`` for latency, cost, PII leaks."""

    def score(self, sample: ScoringInput) -> Score:
        """The score of one sample."""
        ...

    def score_many(self, samples: Sequence[ScoringInput]) -> list[Score]:
        """One score per sample, in order; scorers with a model override it to batch."""
        return [self.score(sample) for sample in samples]


ScorerFactory = Callable[[Mapping[str, Any]], Scorer]
"""Builds a scorer from its options; raises ``InvalidInput`` naming a bad option."""


def missing_reference(name: str) -> Score:
    """The score of a sample without the ``expected`` answer a scorer needs."""
    return Score.failed(f"{name}: the sample has no expected answer to compare with")


def score_batch(scorer: Scorer, samples: Sequence[ScoringInput]) -> list[Score]:
    """``scorer.score_many(samples)``, with every failure turned into per-sample errors.

    A scorer that raises, returns the wrong number of scores, or returns a value
    outside its kind's range yields errors, never values: a plugin's bug cannot
    become a statistic.
    """
    if not samples:
        return []
    try:
        scores = scorer.score_many(samples)
    except Exception as exc:  # a scorer (or its model) failing must not end the run
        reason = f"{scorer.name}: {type(exc).__name__}: {exc}"
        return [Score.failed(reason) for _ in samples]
    if len(scores) != len(samples):
        reason = f"{scorer.name}: returned {len(scores)} scores for {len(samples)} samples"
        return [Score.failed(reason) for _ in samples]
    return [_checked(scorer, score) for score in scores]


def _checked(scorer: Scorer, score: Score) -> Score:
    value = score.value
    if value is None:
        return score
    if not math.isfinite(value):
        problem = "is not a finite number"
    elif scorer.kind == "binary" and value not in (0.0, 1.0):
        problem = "is not 0 or 1"
    elif scorer.kind == "continuous" and not 0.0 <= value <= 1.0:
        problem = "is outside [0, 1]"
    elif scorer.kind == "measure" and value < 0:
        problem = "is negative"
    else:
        return score
    return Score.failed(f"{scorer.name}: value {value!r} {problem} ({scorer.kind} scorer)")
