"""Public shapes of evaluation runs: the request, the stored summary, per-sample results.

``RunSummary`` is what a finished run stores (``eval_runs.summary``) and what
the JSON and HTML reports, the CLI and the automation stage read: for each
target and scorer an aggregate with its 95% interval, for each candidate a
paired comparison with the baseline on every scorer, and each gate's verdict.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from modelcycle.evaluate.gates import GateResult
from modelcycle.evaluate.paired import PairedComparison
from modelcycle.evaluate.statistics import Interval
from modelcycle.types import RequestBody

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
RunKind = Literal["eval", "bias", "redteam"]

MAX_TARGETS = 8
MAX_SCORERS = 32
MAX_GATES = 32


class ScorerSpec(RequestBody):
    """A scorer by name with its options (``{"name": "regex", "options": {"pattern": "..."}}``)."""

    name: str = Field(min_length=1, max_length=64)
    options: dict[str, Any] = Field(default_factory=dict)


class EvalRunCreate(RequestBody):
    """Start an evaluation (``POST /api/v1/evals``)."""

    dataset: str = Field(
        min_length=1, max_length=100, description="NAME (latest version) or NAME@VERSION."
    )
    targets: list[str] = Field(
        min_length=1,
        max_length=MAX_TARGETS,
        description="Deployments, or versions as NAME@VERSION / NAME@alias.",
    )
    scorers: list[ScorerSpec] = Field(min_length=1, max_length=MAX_SCORERS)
    baseline: str | None = Field(
        default=None,
        max_length=200,
        description="The target the others are compared with (default: the first target; "
        "a delta gate's baseline= is added as a target when missing).",
    )
    gates: list[str] = Field(default_factory=list, max_length=MAX_GATES)
    name: str | None = Field(default=None, max_length=100)
    concurrency: int = Field(default=4, ge=1, le=64)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=32_768)
    seed: int | None = None
    limit: int | None = Field(default=None, ge=1, description="Only the first N samples.")


class Aggregate(BaseModel):
    """One scorer's aggregate for one target: the mean (pass rate for 0/1) and its CI."""

    scorer: str
    kind: str
    higher_is_better: bool
    n: int
    errors: int
    estimate: float | None
    low: float | None
    high: float | None
    confidence: float = 0.95
    method: str | None = None

    @classmethod
    def of(
        cls, scorer: str, kind: str, higher_is_better: bool, errors: int, interval: Interval | None
    ) -> Aggregate:
        """From an interval (``None``: no sample was scored)."""
        if interval is None:
            return cls(
                scorer=scorer,
                kind=kind,
                higher_is_better=higher_is_better,
                n=0,
                errors=errors,
                estimate=None,
                low=None,
                high=None,
            )
        return cls(
            scorer=scorer,
            kind=kind,
            higher_is_better=higher_is_better,
            n=interval.n,
            errors=errors,
            estimate=interval.estimate,
            low=interval.low if interval.defined else None,
            high=interval.high if interval.defined else None,
            confidence=interval.confidence,
            method=interval.method,
        )


class Comparison(BaseModel):
    """A candidate against the baseline on one scorer, over the samples both scored."""

    baseline: str
    candidate: str
    scorer: str
    kind: str
    n: int
    wins: int
    ties: int
    losses: int
    baseline_mean: float
    candidate_mean: float
    difference: float
    low: float | None
    high: float | None
    p_value: float
    test: str
    superiority: float
    effect_size: float | None
    effect_size_name: str

    @classmethod
    def of(cls, baseline: str, candidate: str, scorer: str, found: PairedComparison) -> Comparison:
        """From :func:`paired_comparison`'s result."""
        binary = found.kind == "binary"
        difference = found.difference
        return cls(
            baseline=baseline,
            candidate=candidate,
            scorer=scorer,
            kind=found.kind,
            n=found.n,
            wins=found.wins,
            ties=found.ties,
            losses=found.losses,
            baseline_mean=found.baseline_mean,
            candidate_mean=found.candidate_mean,
            difference=difference.estimate,
            low=difference.low if difference.defined else None,
            high=difference.high if difference.defined else None,
            p_value=found.p_value,
            test=found.test,
            superiority=found.superiority,
            effect_size=found.odds_ratio if binary else found.cohens_dz,
            effect_size_name="odds ratio" if binary else "Cohen's d_z",
        )


class GateVerdict(BaseModel):
    """One ``--gate`` and whether it held, with the one-line reason."""

    gate: str
    target: str
    passed: bool
    reason: str
    value: float | None = None
    p_value: float | None = None

    @classmethod
    def of(cls, target: str, result: GateResult) -> GateVerdict:
        """From :func:`evaluate_gate`'s result for ``target``."""
        return cls(
            gate=str(result.gate),
            target=target,
            passed=result.passed,
            reason=result.reason,
            value=result.value,
            p_value=result.p_value,
        )


class TargetSummary(BaseModel):
    """What one target did over the run."""

    target: str
    samples: int
    errors: int
    """Samples the target failed to answer (they carry no scores)."""
    aggregates: list[Aggregate]
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    tokens_out: int = 0
    cost: float | None = None


class RunSummary(BaseModel):
    """A finished run's numbers (``eval_runs.summary``)."""

    dataset: str
    """``NAME@VERSION``."""
    dataset_hash: str
    samples: int
    baseline: str | None
    targets: list[TargetSummary]
    comparisons: list[Comparison] = Field(default_factory=list)
    gates: list[GateVerdict] = Field(default_factory=list)
    gates_passed: bool | None = None
    """``None`` when the run had no gates."""
    duration_s: float = 0.0
    by_category: dict[str, dict[str, Aggregate]] = Field(default_factory=dict)
    """Per ``metadata.category`` of the samples, per target (the red-team pass rates)."""


class EvalRun(BaseModel):
    """A run as the API returns it."""

    id: int
    name: str | None
    kind: RunKind
    dataset: str
    targets: list[str]
    baseline: str | None
    scorers: list[ScorerSpec]
    gates: list[str]
    params: dict[str, Any]
    status: RunStatus
    job_id: int | None
    progress: float = 0.0
    """Fraction of (sample, target) pairs answered and scored."""
    summary: RunSummary | None
    gates_passed: bool | None
    error: str | None
    created_by: str
    created_at: datetime
    finished_at: datetime | None


class ScoreOut(BaseModel):
    """One scorer's verdict on one answer."""

    value: float | None
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class EvalResult(BaseModel):
    """One target's answer to one sample, with its scores and trace."""

    sample_id: int
    position: int
    target: str
    input: dict[str, Any]
    expected: str | None
    output: str | None
    error: str | None
    trace_id: str | None
    model: str | None
    version: int | None
    latency_ms: float | None
    tokens_in: int | None
    tokens_out: int | None
    cost: float | None
    scores: dict[str, ScoreOut]
