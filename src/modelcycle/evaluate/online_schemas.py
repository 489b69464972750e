"""Public shapes of online evaluation: a deployment's configuration and its score series."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from modelcycle.evaluate.schemas import ScorerSpec
from modelcycle.monitor.trace_schemas import TimeRange
from modelcycle.types import MAX_INT32, RequestBody

MAX_ONLINE_SCORERS = 10
ONLINE_SCORER_NAME = re.compile(r"^[a-z0-9_.-]{1,51}$")
"""Scorer names that fit an alert metric ``online_score:<name>`` (64 characters)."""
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_rate(value: Any) -> float:
    """A sample rate in (0, 1] from a fraction (``0.1``) or a percentage (``"10%"``)."""
    if isinstance(value, bool):
        raise ValueError("give a fraction such as 0.1 or a percentage such as '10%'")
    if isinstance(value, str):
        percent = _PERCENT.match(value)
        try:
            rate = float(percent.group(1)) / 100 if percent else float(value)
        except ValueError:
            raise ValueError(
                f"{value[:40]!r} is not a rate; give a fraction such as 0.1 "
                "or a percentage such as '10%'"
            ) from None
    elif isinstance(value, int | float):
        rate = float(value)
    else:
        raise ValueError("give a fraction such as 0.1 or a percentage such as '10%'")
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError("must be more than 0 (0.1 or '10%' scores one trace in ten)")
    if rate > 1:
        raise ValueError(f"{rate:g} is more than 1; give a fraction (0.1) or a percentage ('10%')")
    return rate


class OnlineEvalSet(RequestBody):
    """Body of ``PUT /api/v1/evals/online/{deployment}``: the whole configuration."""

    sample_rate: float = Field(
        description="Share of traces scored: a fraction in (0, 1] or a percentage string "
        "such as '10%'. A trace is in the sample when sha256(trace_id) falls below it, so "
        "the same traces are chosen on every pass."
    )
    scorers: list[ScorerSpec] = Field(
        min_length=1,
        max_length=MAX_ONLINE_SCORERS,
        description="Reference-free scorers (json_valid, toxicity, pii_leak, refusal, "
        "llm_judge...), each name at most once.",
    )
    enabled: bool = True

    @field_validator("sample_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> float:
        return parse_rate(value)


class OnlineEvalConfig(BaseModel):
    """A deployment's online evaluation and how far it has scored."""

    deployment: str
    sample_rate: float
    scorers: list[ScorerSpec]
    enabled: bool
    scored_until: datetime | None = Field(
        description="Every sampled trace that started before this time has been scored."
    )
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


class OnlineScoreQuery(TimeRange):
    """Query of ``GET /api/v1/evals/online/{deployment}/scores``."""

    bucket_s: int | None = Field(default=None, ge=60, le=86_400, multiple_of=60)
    """Bucket width in seconds (a multiple of 60); by default the smallest of 60, 300,
    900, 3600 and 86400 that gives at most 360 buckets."""
    version: int | None = Field(default=None, ge=0, le=MAX_INT32)
    scorer: str | None = Field(default=None, min_length=1, max_length=64)


class OnlineScorePoint(BaseModel):
    """One bucket of a series: the scores of the traces that started in it."""

    start: datetime
    count: int = Field(description="Scores with a value.")
    errors: int = Field(description="Traces the scorer could not score.")
    mean: float | None


class OnlineScoreSeries(BaseModel):
    """One scorer's verdicts on one model version, over time."""

    scorer: str
    model: str | None
    version: int | None
    count: int
    errors: int
    mean: float | None
    points: list[OnlineScorePoint] = Field(description="Buckets with scores, oldest first.")


class OnlineScores(BaseModel):
    """Online scores of a deployment per scorer and version, bucketed by trace start."""

    deployment: str
    start: datetime
    end: datetime
    bucket_s: int
    series: list[OnlineScoreSeries]
