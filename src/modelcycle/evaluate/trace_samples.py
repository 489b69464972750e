"""Samples from production traces: which traces a filter selects, and each one as a sample.

A trace is taken once, at its newest model call (``llm`` span, shadow copies
excluded) matching the filter. Its sample's input is that call's request (the
messages, or the completion prompt), its expected answer the latest matching
feedback's correction (or the model's own answer, when asked), its
``trace_id`` the lineage. Every text passes through the storage redactor, so a
dataset never holds what the trace store would not (docs/datasets.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from pydantic import Field, model_validator
from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session

from modelcycle.evaluate.dataset_files import BadRecord, parse_messages
from modelcycle.evaluate.samples import SampleIn
from modelcycle.guard.storage import RedactionFailed
from modelcycle.monitor.feedback import answering_span
from modelcycle.store.tables import FeedbackRow, SpanRow
from modelcycle.types import MAX_INT32, RequestBody

FeedbackKind = Literal["negative", "positive", "any"]
ExpectedFrom = Literal["correction", "output", "none"]
Redactor = Callable[[str], str]

DEFAULT_WINDOW = timedelta(days=30)
"""How far back a filter without ``start`` looks."""
MAX_TRACE_SAMPLES = 100_000
NEGATIVE_BELOW = 0.5
"""A feedback score under this (thumbs down is 0.0) is negative; at or above, positive."""
_BATCH = 2_000
_IN_CHUNK = 500


class TraceSampleFilter(RequestBody):
    """Which traces become samples, and what becomes their expected answer."""

    deployment: str | None = Field(default=None, min_length=1, max_length=64)
    version: int | None = Field(default=None, ge=0, le=MAX_INT32)
    model: str | None = Field(default=None, min_length=1, max_length=128)
    status: Literal["ok", "error"] | None = None
    start: datetime | None = Field(default=None, description="Default: 30 days before end.")
    end: datetime | None = Field(default=None, description="Default: now.")
    feedback: FeedbackKind | None = Field(
        default=None,
        description="Only traces with feedback: negative (score < 0.5, thumbs down, or a "
        "correction without a score), positive (score >= 0.5) or any.",
    )
    with_correction: bool = Field(
        default=False, description="Only traces whose (matching) feedback has a correction."
    )
    expected_from: ExpectedFrom = Field(
        default="correction",
        description="The expected answer: the feedback's correction, the model's output, or none.",
    )
    limit: int = Field(default=1_000, ge=1, le=MAX_TRACE_SAMPLES)

    @model_validator(mode="after")
    def _ordered(self) -> TraceSampleFilter:
        for moment in (self.start, self.end):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("start and end need a time zone (e.g. 2025-06-01T00:00:00Z)")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def window(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """``(start, end)`` with the defaults filled in."""
        end = self.end or now or datetime.now(UTC)
        return self.start or end - DEFAULT_WINDOW, end


@dataclass(slots=True)
class Harvest:
    """The samples built, and how many selected traces could not become one (and why)."""

    samples: list[SampleIn]
    skipped: dict[str, int]


def harvest(
    session: Session,
    project_id: int,
    wanted: TraceSampleFilter,
    redact: Redactor | None,
    *,
    now: datetime | None = None,
) -> Harvest:
    """Samples from the traces of a project that ``wanted`` selects, newest first."""
    start, end = wanted.window(now)
    trace_ids = _select(session, project_id, wanted, start, end)
    out = Harvest([], {})
    for chunk_start in range(0, len(trace_ids), _IN_CHUNK):
        chunk = trace_ids[chunk_start : chunk_start + _IN_CHUNK]
        spans, feedback = _load(session, project_id, chunk)
        for trace_id in chunk:
            try:
                out.samples.append(
                    _sample(trace_id, spans.get(trace_id, []), feedback.get(trace_id, []), wanted)
                )
            except _Skip as skip:
                out.skipped[skip.reason] = out.skipped.get(skip.reason, 0) + 1
    if redact is not None:
        out.samples = _scrubbed(out.samples, redact, out.skipped)
    return out


class _Skip(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _feedback_matches(wanted: TraceSampleFilter) -> list[ColumnElement[bool]]:
    judged: list[ColumnElement[bool]] = []
    if wanted.feedback == "negative":
        judged.append(
            or_(
                FeedbackRow.score < NEGATIVE_BELOW,
                and_(FeedbackRow.score.is_(None), FeedbackRow.correction.is_not(None)),
            )
        )
    elif wanted.feedback == "positive":
        judged.append(FeedbackRow.score >= NEGATIVE_BELOW)
    if wanted.with_correction:
        judged.append(FeedbackRow.correction.is_not(None))
    return judged


def _select(
    session: Session, project_id: int, wanted: TraceSampleFilter, start: datetime, end: datetime
) -> list[str]:
    """Up to ``limit`` trace ids, newest matching model call first."""
    conditions: list[ColumnElement[bool]] = [
        SpanRow.project_id == project_id,
        SpanRow.start_time >= start,
        SpanRow.start_time < end,
        SpanRow.kind == "llm",
        or_(SpanRow.route.is_(None), SpanRow.route != "shadow"),
    ]
    for column in ("deployment", "version", "model", "status"):
        value = getattr(wanted, column)
        if value is not None:
            conditions.append(getattr(SpanRow, column) == value)
    if wanted.feedback is not None or wanted.with_correction:
        conditions.append(
            exists().where(
                FeedbackRow.project_id == project_id,
                FeedbackRow.trace_id == SpanRow.trace_id,
                *_feedback_matches(wanted),
            )
        )
    found: dict[str, None] = {}
    resume: tuple[datetime, int] | None = None
    while len(found) < wanted.limit:
        query = select(SpanRow.trace_id, SpanRow.start_time, SpanRow.id).where(*conditions)
        if resume is not None:
            at, span_key = resume
            query = query.where(
                SpanRow.start_time <= at, or_(SpanRow.start_time < at, SpanRow.id < span_key)
            )
        rows = session.execute(
            query.order_by(SpanRow.start_time.desc(), SpanRow.id.desc()).limit(_BATCH)
        ).all()
        for row in rows:
            found.setdefault(row.trace_id)
            if len(found) >= wanted.limit:
                break
        if len(rows) < _BATCH:
            break
        resume = (rows[-1].start_time, rows[-1].id)
    return list(found)


def _load(
    session: Session, project_id: int, trace_ids: Sequence[str]
) -> tuple[dict[str, list[SpanRow]], dict[str, list[FeedbackRow]]]:
    spans: dict[str, list[SpanRow]] = {}
    for span in session.execute(
        select(SpanRow)
        .where(SpanRow.project_id == project_id, SpanRow.trace_id.in_(trace_ids))
        .order_by(SpanRow.start_time, SpanRow.id)
    ).scalars():
        spans.setdefault(span.trace_id, []).append(span)
    feedback: dict[str, list[FeedbackRow]] = {}
    for row in session.execute(
        select(FeedbackRow)
        .where(FeedbackRow.project_id == project_id, FeedbackRow.trace_id.in_(trace_ids))
        .order_by(FeedbackRow.created_at, FeedbackRow.id)
    ).scalars():
        feedback.setdefault(row.trace_id, []).append(row)
    return spans, feedback


def _is_match(row: FeedbackRow, wanted: TraceSampleFilter) -> bool:
    if wanted.with_correction and row.correction is None:
        return False
    if wanted.feedback == "negative":
        return (row.score is not None and row.score < NEGATIVE_BELOW) or (
            row.score is None and row.correction is not None
        )
    if wanted.feedback == "positive":
        return row.score is not None and row.score >= NEGATIVE_BELOW
    return True


def _sample(
    trace_id: str,
    spans: Sequence[SpanRow],
    feedback: Sequence[FeedbackRow],
    wanted: TraceSampleFilter,
) -> SampleIn:
    matching = [row for row in feedback if _is_match(row, wanted)]
    judged = matching[-1] if matching else (feedback[-1] if feedback else None)
    call = None
    if judged is not None and judged.span_id is not None:
        call = next((span for span in spans if span.span_id == judged.span_id), None)
    if call is None:
        call = answering_span([s for s in spans if s.kind == "llm"], None)
    if call is None:
        raise _Skip("no model call")
    prompt = trace_input(call.input)
    if prompt is None:
        raise _Skip("input not stored or not a prompt")
    expected: str | None = None
    if wanted.expected_from == "correction" and judged is not None:
        expected = judged.correction
    elif wanted.expected_from == "output":
        expected = call.output
    metadata: dict[str, Any] = {
        key: value
        for key, value in {
            "deployment": call.deployment,
            "model": call.model,
            "version": call.version,
            "feedback_score": judged.score if judged is not None else None,
            "feedback_label": judged.label if judged is not None else None,
        }.items()
        if value is not None
    }
    if expected is not None and judged is not None and judged.correction and call.output:
        # The answer the user corrected: with the correction as the chosen one, the
        # sample is also a DPO preference pair (tuning reads metadata.rejected).
        metadata["rejected"] = call.output
    return SampleIn(prompt, expected, metadata, trace_id)


def trace_input(text: str | None) -> dict[str, Any] | None:
    """A stored span input as a sample input: messages (JSON list) or a prompt (JSON string).

    Text that is not JSON (a traced application's own span) is one user message;
    anything else (a batch of prompts, a cut-off text) gives ``None``.
    """
    if text is None or not text.strip():
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"messages": [{"role": "user", "content": text}]}
    if isinstance(value, str):
        return {"prompt": value} if value.strip() else None
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        try:
            return {"messages": parse_messages([_flat(m) for m in value], "input")}
        except BadRecord:
            return None
    return None


def _flat(message: dict[str, Any]) -> dict[str, Any]:
    """A message whose content is a list of text parts, with the parts joined."""
    content = message.get("content")
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" for part in content
    ):
        joined = "".join(str(part.get("text", "")) for part in content)
        return {key: value for key, value in message.items() if key in {"role", "name"}} | {
            "content": joined
        }
    return {key: value for key, value in message.items() if key in {"role", "content", "name"}}


def _scrubbed(samples: list[SampleIn], redact: Redactor, skipped: dict[str, int]) -> list[SampleIn]:
    """Samples with personal data and secrets redacted; one the redactor fails on is dropped."""
    cache: dict[str, str] = {}

    def clean(text: str) -> str:
        found = cache.get(text)
        if found is None:
            found = cache[text] = redact(text)
        return found

    out: list[SampleIn] = []
    for sample in samples:
        try:
            out.append(_scrub_one(sample, clean))
        except RedactionFailed:  # withheld, never stored raw
            skipped["redaction failed"] = skipped.get("redaction failed", 0) + 1
    return out


def _scrub_one(sample: SampleIn, clean: Redactor) -> SampleIn:
    prompt: dict[str, Any]
    if "messages" in sample.input:
        prompt = {
            "messages": [
                {**message, "content": clean(message["content"])}
                for message in sample.input["messages"]
            ]
        }
    else:
        prompt = {"prompt": clean(sample.input["prompt"])}
    metadata = dict(sample.metadata)
    for key in ("feedback_label", "rejected"):  # free text a user typed; a model's answer
        if isinstance(metadata.get(key), str):
            metadata[key] = clean(metadata[key])
    expected = clean(sample.expected) if sample.expected is not None else None
    return SampleIn(prompt, expected, metadata, sample.trace_id)
