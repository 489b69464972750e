"""Request and response shapes of drift checks, reports and schedules."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from modelcycle.types import NAME_PATTERN, RequestBody

MetricName = Literal[
    "embedding_classifier",
    "embedding_mmd",
    "input_length",
    "output_length",
    "language",
    "refusal_rate",
    "guard_rate",
    "feedback_score",
]
METRICS: tuple[MetricName, ...] = (
    "embedding_classifier",
    "embedding_mmd",
    "input_length",
    "output_length",
    "language",
    "refusal_rate",
    "guard_rate",
    "feedback_score",
)

DEFAULT_THRESHOLDS: dict[str, float] = {
    "alpha": 0.05,
    "embedding_classifier": 0.55,
    "embedding_mmd": 0.05,
    "input_length": 0.1,
    "output_length": 0.1,
    "language": 0.1,
    "refusal_rate": 0.05,
    "guard_rate": 0.05,
    "feedback_score": 0.1,
}
"""Per metric, the effect that counts as drift; ``alpha`` is the significance level.

``embedding_classifier``: ROC AUC of the domain classifier; ``embedding_mmd``:
the permutation p-value (it is a test only); lengths: PSI; ``language``: total
variation distance of the language mix; rates: absolute change; feedback:
absolute change of the mean score (scores are in [0, 1]).
"""

MAX_TEXTS = 10_000
MAX_TEXT_CHARS = 64_000


class WindowReference(RequestBody):
    """Reference = production spans of an earlier window.

    Without ``start``/``end``: the window of the same length just before the
    current one (so a schedule compares each window with the one before).
    """

    kind: Literal["window"] = "window"
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> WindowReference:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both reference start and end, or neither")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("reference start must be before its end")
        return self


class TextsReference(RequestBody):
    """Reference = texts given inline (a launch-day sample, say)."""

    kind: Literal["texts"]
    inputs: list[Annotated[str, Field(max_length=MAX_TEXT_CHARS)]] = Field(
        min_length=1, max_length=MAX_TEXTS, description="User prompts of the reference."
    )
    outputs: list[Annotated[str, Field(max_length=MAX_TEXT_CHARS)]] | None = Field(
        default=None,
        max_length=MAX_TEXTS,
        description="Answers of the reference (output length and refusal rate).",
    )


Reference = Annotated[WindowReference | TextsReference, Field(discriminator="kind")]


class DriftCheck(RequestBody):
    """Body of ``POST /api/v1/drift/checks``: what to compare, on which metrics."""

    deployment: str | None = Field(
        default=None, max_length=64, description="Only this deployment's spans (all when omitted)."
    )
    window_s: int = Field(
        default=3600,
        ge=60,
        le=90 * 86_400,
        description="Length of the current window, ending at `end` (default: now).",
    )
    start: AwareDatetime | None = Field(default=None, description="Current window start.")
    end: AwareDatetime | None = Field(default=None, description="Current window end.")
    reference: Reference = Field(default_factory=WindowReference)
    metrics: list[MetricName] | None = Field(
        default=None, min_length=1, description="Metrics to compute (all when omitted)."
    )
    thresholds: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default_factory=dict, description=f"Overrides of {sorted(DEFAULT_THRESHOLDS)}."
    )
    min_samples: int = Field(
        default=30, ge=2, le=10_000, description="Fewer per window: 'insufficient_data'."
    )
    max_samples: int = Field(
        default=1000, ge=10, le=5000, description="Rows sampled per window, at most."
    )

    @model_validator(mode="after")
    def _consistent(self) -> DriftCheck:
        unknown = sorted(set(self.thresholds) - set(DEFAULT_THRESHOLDS))
        if unknown:
            raise ValueError(f"unknown thresholds {unknown}; known: {sorted(DEFAULT_THRESHOLDS)}")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        return self

    def threshold(self, name: str) -> float:
        """The threshold in force for ``name``."""
        return self.thresholds.get(name, DEFAULT_THRESHOLDS[name])


class DriftMetric(BaseModel):
    """One metric of a report."""

    name: str
    status: Literal["drift", "ok", "insufficient_data", "unavailable"]
    drifted: bool
    test: str
    """How it was measured, e.g. ``KS test + PSI``."""
    statistic: float | None
    """The effect compared with ``threshold`` (AUC, PSI, distance, rate change...)."""
    p_value: float | None
    threshold: float
    current_n: int
    reference_n: int
    message: str
    """One line for people: what changed, or why it was not measured."""
    evidence: dict[str, Any]
    """Statistics, histogram bins, shares and the most changed examples."""


class DriftReport(BaseModel):
    """A drift check's outcome, metric by metric."""

    id: int
    deployment: str | None
    current_start: datetime
    current_end: datetime
    reference: dict[str, Any]
    metrics: list[DriftMetric]
    drifted: bool
    drifted_metrics: list[str]
    created_by: str
    created_at: datetime


class DriftScheduleCreate(RequestBody):
    """Body of ``POST /api/v1/drift/schedules``: a check the worker runs every ``interval_s``."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique in the project.")
    interval_s: int = Field(ge=60, le=30 * 86_400, description="Seconds between two checks.")
    check: DriftCheck = Field(
        default_factory=DriftCheck,
        description="The check; its current window is the `window_s` before each run.",
    )

    @model_validator(mode="after")
    def _relative_window(self) -> DriftScheduleCreate:
        if self.check.start is not None or self.check.end is not None:
            raise ValueError(
                "a scheduled check has no fixed current window: set check.window_s, "
                "not check.start/check.end"
            )
        return self


class DriftSchedule(BaseModel):
    """A recurring drift check."""

    name: str
    interval_s: int
    check: DriftCheck
    next_run_at: datetime
    last_job_id: int | None
    created_by: str
    created_at: datetime
