"""The public shapes of traces, feedback, rollups and the monitoring policy.

They are what the API answers and the SDK returns; the service modules
(``queries``, ``feedback``, ``retention``) build them from rows.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from modelcycle.registry.schemas import JSONDocument
from modelcycle.types import MAX_INT32, RequestBody

MAX_PAGE = 200
"""Traces per page, at most."""

TRACE_ID_PATTERN = r"^[0-9A-Za-z_-]{1,32}$"
"""Trace ids: 32 hex digits from the gateway, the SDK and OTLP; other short tokens pass too."""


def _encodable(text: str) -> str:
    # JSON escapes can carry lone surrogates, which no database can store.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds text that is not valid Unicode") from None
    return text


Text = Annotated[str, AfterValidator(_encodable)]
"""A string both databases can store (NUL characters are refused by ``RequestBody``)."""


class SpanStatus(enum.StrEnum):
    """How a span ended."""

    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"


class RouteKind(enum.StrEnum):
    """Which of a deployment's routes served a gateway span."""

    PRIMARY = "primary"
    CANARY = "canary"
    FALLBACK = "fallback"
    SHADOW = "shadow"


class GuardOutcome(enum.StrEnum):
    """The guard stage's decision on a request."""

    ALLOW = "allow"
    FLAG = "flag"
    REDACT = "redact"
    BLOCK = "block"


Thumbs = Literal[1, -1]
"""A thumbs-up (1) or thumbs-down (-1) judgement."""


def _number_text(value: Any) -> Any:
    # Query strings carry "1" and "-1"; a Literal of ints would refuse them as text.
    if isinstance(value, str) and value.strip() in {"1", "-1", "+1"}:
        return int(value)
    return value


QueryThumbs = Annotated[Thumbs, BeforeValidator(_number_text)]


class GroupBy(enum.StrEnum):
    """How rollup series are split."""

    NONE = "none"
    DEPLOYMENT = "deployment"
    VERSION = "version"
    """Deployment, model and version: the unit a canary is judged on."""
    ROUTE = "route"
    """Deployment and route (primary, canary, fallback, shadow)."""


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""Times outside [EARLIEST, LATEST) are refused: nothing is recorded there, and date
arithmetic near ``datetime.max`` would overflow."""


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` in UTC (naive times are taken as UTC); 400 outside [EARLIEST, LATEST)."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be between 1970-01-01 and 2200-01-01")
    return value


class TimeRange(RequestBody):
    """``start``/``end`` of a query; defaults (the last 24 hours) are filled in by the service."""

    start: datetime | None = None
    """Inclusive start (ISO 8601; naive times are UTC); default ``end`` minus 24 hours."""
    end: datetime | None = None
    """Exclusive end; default now."""

    @field_validator("start", "end", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class TraceFilter(TimeRange):
    """What a trace search matches: a trace is listed when one of its spans matches all."""

    deployment: str | None = Field(default=None, min_length=1, max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=128)
    version: int | None = Field(default=None, ge=0, le=MAX_INT32)
    status: SpanStatus | None = None
    route: RouteKind | None = None
    user_id: str | None = Field(default=None, min_length=1, max_length=128)
    session_id: str | None = Field(default=None, min_length=1, max_length=128)
    key_id: int | None = Field(default=None, ge=0, le=MAX_INT32)
    text: str | None = Field(default=None, min_length=1, max_length=200)
    """Contained in the input or the output, ignoring case (ASCII letters on SQLite)."""
    guard: GuardOutcome | None = None
    has_feedback: bool | None = None
    """``true``: only traces with feedback; ``false``: only traces without."""
    min_score: float | None = Field(default=None, ge=0.0, le=1.0)
    """Only traces with a feedback score of at least this."""
    max_score: float | None = Field(default=None, ge=0.0, le=1.0)
    """Only traces with a feedback score of at most this."""
    thumbs: QueryThumbs | None = None
    """Only traces with this thumbs feedback (1 or -1)."""
    cursor: str | None = Field(default=None, max_length=200)
    """``next_cursor`` of the previous page."""
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)

    @model_validator(mode="after")
    def _consistent_feedback(self) -> TraceFilter:
        wants_feedback = (self.min_score, self.max_score, self.thumbs) != (None, None, None)
        if self.has_feedback is False and wants_feedback:
            raise ValueError("has_feedback=false contradicts a score or thumbs filter")
        if (
            self.min_score is not None
            and self.max_score is not None
            and self.min_score > self.max_score
        ):
            raise ValueError("min_score must not exceed max_score")
        return self


class RollupQuery(TimeRange):
    """Which rollups to read and how to bucket them."""

    step: int | None = Field(default=None, ge=60, le=86_400, multiple_of=60)
    """Bucket width in seconds (a multiple of 60); by default the smallest of 60, 300,
    900, 3600 and 86400 that gives at most 360 buckets (24 hours: 300)."""
    group_by: GroupBy = GroupBy.DEPLOYMENT
    deployment: str | None = Field(default=None, min_length=1, max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=128)
    version: int | None = Field(default=None, ge=0, le=MAX_INT32)
    route: RouteKind | None = None


class Span(BaseModel):
    """One span of a trace: a gateway request, or one operation of a traced application."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    depth: int = 0
    """Nesting level in the trace's tree (0 for a root)."""
    name: str
    kind: str
    source: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    ttft_ms: float | None
    status: str
    status_code: int | None
    error_type: str | None
    error_message: str | None
    request_id: str | None
    endpoint: str | None
    deployment: str | None
    model: str | None
    version: int | None
    route: str | None
    key_id: int | None
    user_id: str | None
    session_id: str | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int | None
    reasoning_tokens: int | None
    cost: float | None
    cache_hit: bool
    attempts: int
    stream: bool
    finish_reason: str | None
    guard: str | None
    params: dict[str, Any] | None
    input: str | None
    """JSON text of the messages or prompt (after the guard's redaction)."""
    output: str | None
    attributes: dict[str, Any] | None


class TraceSummary(BaseModel):
    """One row of a trace search: the trace's root span and totals over its spans."""

    trace_id: str
    name: str
    kind: str
    source: str
    start_time: datetime
    """When the root span started."""
    end_time: datetime
    """When the last span ended."""
    duration_ms: float
    status: str
    """``error`` when any span failed, else the root span's status."""
    span_count: int
    error_count: int
    deployment: str | None
    model: str | None
    version: int | None
    route: str | None
    key_id: int | None
    user_id: str | None
    session_id: str | None
    guard: str | None
    input_tokens: int
    """Sum over the trace's model calls (LLM and embedding spans), as rollups count them."""
    output_tokens: int
    cost: float | None
    input: str | None
    """The root span's input, cut to ``PREVIEW_CHARS`` characters."""
    output: str | None
    """The root span's output, cut to ``PREVIEW_CHARS`` characters."""
    feedback_count: int
    feedback_score: float | None
    """Mean feedback score (0..1) of the trace, when any feedback has a score."""


class TracePage(BaseModel):
    """One page of a trace search, newest first."""

    data: list[TraceSummary]
    next_cursor: str | None
    """Pass as ``cursor`` to get the next page; ``null`` on the last page."""


class FeedbackCreate(RequestBody):
    """A user's judgement of a trace; give a score or thumbs, and anything else that helps."""

    score: float | None = Field(default=None, ge=0.0, le=1.0)
    """From 0 (bad) to 1 (good)."""
    thumbs: Thumbs | None = None
    """1 (thumbs up, stored with score 1) or -1 (down, score 0); give this or ``score``."""
    label: Text | None = Field(default=None, min_length=1, max_length=64)
    """A category, e.g. ``wrong-answer``, ``helpful``, ``toxic``."""
    comment: Text | None = Field(default=None, max_length=10_000)
    correction: Text | None = Field(default=None, max_length=64_000)
    """The answer the model should have given (a target for tuning)."""
    span_id: str | None = Field(default=None, pattern=r"^[0-9A-Za-z_-]{1,16}$")
    """The span judged; by default the trace's model call that answered."""
    user_id: Text | None = Field(default=None, min_length=1, max_length=128)
    """Who gave the feedback (your application's user id)."""
    attributes: JSONDocument | None = None
    """Free-form JSON object kept with the feedback."""

    @model_validator(mode="after")
    def _says_something(self) -> FeedbackCreate:
        if self.score is not None and self.thumbs is not None:
            raise ValueError("give either score or thumbs, not both")
        judged = (self.score, self.thumbs, self.label, self.comment, self.correction)
        if all(value is None for value in judged):
            raise ValueError("feedback needs a score, thumbs, label, comment or correction")
        return self


class Feedback(BaseModel):
    """Feedback as stored, linked to the model version that answered."""

    id: int
    trace_id: str
    span_id: str | None
    deployment: str | None
    model: str | None
    version: int | None
    score: float | None
    thumbs: Thumbs | None
    label: str | None
    comment: str | None
    correction: str | None
    user_id: str | None
    actor: str
    attributes: dict[str, Any] | None
    created_at: datetime


class Trace(BaseModel):
    """A trace in full: every span in tree order (parents before children) and its feedback."""

    trace_id: str
    spans: list[Span]
    feedback: list[Feedback]


class RollupStats(BaseModel):
    """Aggregates of model calls over one time bucket (or a whole range)."""

    time: datetime
    """Start of the bucket (of the range, for a summary)."""
    requests: int
    errors: int
    error_rate: float | None
    latency_mean_ms: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    input_tokens: int
    output_tokens: int
    cost: float
    cache_hits: int
    feedback_count: int
    feedback_score: float | None
    """Mean feedback score, when any feedback was given."""


class RollupPoints(BaseModel):
    """A series' buckets as columns: element ``i`` of every list describes bucket ``i``.

    Columns (the shape charting libraries take) keep a day of one-minute buckets
    small to send and cheap to build; only buckets with data are present.
    """

    time: list[datetime]
    """Start of each bucket."""
    requests: list[int]
    errors: list[int]
    error_rate: list[float | None]
    latency_mean_ms: list[float | None]
    latency_p50_ms: list[float | None]
    latency_p95_ms: list[float | None]
    latency_p99_ms: list[float | None]
    ttft_p50_ms: list[float | None]
    ttft_p95_ms: list[float | None]
    input_tokens: list[int]
    output_tokens: list[int]
    cost: list[float]
    cache_hits: list[int]
    feedback_count: list[int]
    feedback_score: list[float | None]

    def rows(self) -> list[RollupStats]:
        """The buckets as one ``RollupStats`` each."""
        names = list(RollupStats.model_fields)
        columns = [getattr(self, name) for name in names]
        return [
            RollupStats(**dict(zip(names, values, strict=True)))
            for values in zip(*columns, strict=True)
        ]


class RollupSeries(BaseModel):
    """One group's buckets and its totals over the range."""

    deployment: str | None = None
    model: str | None = None
    version: int | None = None
    route: str | None = None
    points: RollupPoints
    summary: RollupStats


class Rollups(BaseModel):
    """Per-bucket series and totals; percentiles come from merged latency histograms."""

    start: datetime
    end: datetime
    step_s: int
    group_by: GroupBy
    series: list[RollupSeries]
    summary: RollupStats


class MonitorPolicy(BaseModel):
    """A project's monitoring policy."""

    retention_days: int | None
    """Traces (spans and their feedback) older than this are purged; ``null`` keeps them."""
    store_raw_text: bool = False
    """Prompts and answers are stored as sent; ``false`` (the default): personal data and
    secrets are redacted before a trace is stored (docs/privacy.md)."""
    updated_by: str | None = None
    updated_at: datetime | None = None


class MonitorPolicyUpdate(RequestBody):
    """A change to the monitoring policy: fields left out keep their value."""

    retention_days: Annotated[int, Field(ge=1, le=36_500)] | None = Field(
        default=None,
        description="Days to keep traces (1..36500); null keeps them forever; left out: unchanged.",
    )
    store_raw_text: bool | None = Field(
        default=None,
        description="true stores prompts and answers unredacted (personal data included; "
        "audited); false redacts personal data and secrets first; null or left out: unchanged.",
    )

    @model_validator(mode="after")
    def _changes_something(self) -> MonitorPolicyUpdate:
        if not self.model_fields_set:
            raise ValueError("give retention_days, store_raw_text or both")
        return self
