"""The vocabulary of the guard stage: findings, detectors and decisions.

A *detector* looks at one text and reports *findings* (what it found, where,
how sure). A *policy* says, per stage (``input`` before the model, ``output``
after it), which detectors run and what each finding leads to: ``flag`` (record
only), ``redact`` (rewrite the span) or ``block`` (refuse the request). The
*decision* is the strongest action any finding led to, with the rewritten text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Action = Literal["allow", "flag", "redact", "block"]
RuleAction = Literal["flag", "redact", "block"]
Stage = Literal["input", "output"]

ACTION_RANK: dict[str, int] = {"allow": 0, "flag": 1, "redact": 2, "block": 3}


def strongest(actions: list[Action] | tuple[Action, ...]) -> Action:
    """The strongest of several actions (``allow`` when there are none)."""
    best: Action = "allow"
    for action in actions:
        if ACTION_RANK[action] > ACTION_RANK[best]:
            best = action
    return best


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a detector found in a text: never the text itself, only where it is.

    ``start``/``end`` are character offsets (Python ``str`` indices, end
    exclusive) into the text the detector was given; a finding about the text
    as a whole (an injection phrase set, a size limit) may cover all of it.
    """

    detector: str
    """The detector's registered name, e.g. ``pii``."""
    type: str
    """What was found, upper case, e.g. ``EMAIL_ADDRESS``, ``ES_DNI``, ``PROMPT_INJECTION``."""
    start: int
    end: int
    score: float
    """Confidence in [0, 1]."""
    action: Action = "flag"
    """What the policy made of it (set by the engine, not by detectors)."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``POST /api/v1/guard/check``'s findings."""
        return {
            "detector": self.detector,
            "type": self.type,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 4),
            "action": self.action,
        }


@runtime_checkable
class Detector(Protocol):
    """Finds one family of risks in a text. Must be thread-safe and never mutate state.

    ``detect`` must return quickly on any input (every regex is checked for
    catastrophic backtracking); a detector that needs a model loads it in its
    factory or lazily, from a local path only, never from a hub.
    """

    name: str

    def detect(self, text: str) -> list[Finding]:
        """Every finding in ``text`` (empty: nothing found)."""
        ...


DetectorFactory = Callable[[Mapping[str, Any]], Detector]
"""Builds a detector from the rule's ``options`` (validated by the factory: raise
``InvalidInput`` naming the option on a bad one)."""


@dataclass(frozen=True, slots=True)
class GuardDecision:
    """What a policy made of one text."""

    action: Action
    findings: tuple[Finding, ...] = ()
    redacted_text: str = ""
    """The text with every ``redact`` finding replaced by ``[TYPE]``; the text as given
    when nothing was redacted."""
    errors: tuple[str, ...] = ()
    """Detectors that raised or ran out of time: ``name: ExceptionType``."""
    blocked_by: tuple[str, ...] = field(default=())
    """The types of the findings that blocked (also ``detector_error`` when one failed closed)."""

    @property
    def blocked(self) -> bool:
        """Whether the request must be refused."""
        return self.action == "block"
