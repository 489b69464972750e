"""What a drift check compares: a sample of one window of production, or reference texts.

Spans are the LLM spans of the project (optionally one deployment), shadow
calls left out (their answers reach no user). Texts come from the sampled spans
that kept their content (``trace_content``); rates are counted over every span
of the window in SQL, so sampling never blurs them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.orm import Session

from modelcycle.monitor.drift_schemas import TextsReference
from modelcycle.monitor.drift_text import output_text, prompt_text
from modelcycle.store.tables import FeedbackRow, SpanRow

GUARD_HITS = ("flag", "redact", "block")
_CHUNK = 500
MAX_FEEDBACK = 10_000


@dataclass(frozen=True, slots=True)
class Sample:
    """One side of a comparison."""

    inputs: list[str]
    """User prompts (sampled)."""
    outputs: list[str]
    """Answers of successful calls (sampled)."""
    spans: int | None = None
    """Spans in the window (``None`` for reference texts)."""
    guarded: int = 0
    """Spans that carry a guard decision."""
    guard_hits: int = 0
    """Spans the guard flagged, redacted or blocked."""
    feedback: list[float] | None = None
    """Feedback scores given in the window (``None`` for reference texts)."""


def texts_sample(reference: TextsReference) -> Sample:
    """The reference texts given inline."""
    return Sample(inputs=list(reference.inputs), outputs=list(reference.outputs or []))


def window_sample(
    session: Session,
    *,
    project_id: int,
    deployment: str | None,
    start: datetime,
    end: datetime,
    max_samples: int,
    seed: int = 0,
) -> Sample:
    """Up to ``max_samples`` spans of ``[start, end)``, the window's guard counts and feedback."""
    where = _span_filter(project_id, deployment, start, end)
    total, guarded, hits = session.execute(
        select(
            func.count(SpanRow.id),
            func.coalesce(func.sum(case((SpanRow.guard.is_not(None), 1), else_=0)), 0),
            func.coalesce(func.sum(case((SpanRow.guard.in_(GUARD_HITS), 1), else_=0)), 0),
        ).where(*where)
    ).one()
    ids: Sequence[int] = (
        session.execute(select(SpanRow.id).where(*where, SpanRow.input.is_not(None)))
        .scalars()
        .all()
    )
    if len(ids) > max_samples:
        ids = random.Random(seed).sample(list(ids), max_samples)  # noqa: S311 - sampling, not security
    inputs: list[str] = []
    outputs: list[str] = []
    for chunk in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(SpanRow.input, SpanRow.output, SpanRow.status).where(
                SpanRow.id.in_(ids[chunk : chunk + _CHUNK])
            )
        ).all()
        for raw_input, raw_output, status in rows:
            prompt = prompt_text(raw_input)
            if prompt:
                inputs.append(prompt)
            answer = output_text(raw_output) if status == "ok" else None
            if answer:
                outputs.append(answer)
    return Sample(
        inputs=inputs,
        outputs=outputs,
        spans=int(total),
        guarded=int(guarded),
        guard_hits=int(hits),
        feedback=_feedback(session, project_id, deployment, start, end),
    )


def _span_filter(
    project_id: int, deployment: str | None, start: datetime, end: datetime
) -> list[ColumnElement[bool]]:
    where = [
        SpanRow.project_id == project_id,
        SpanRow.kind == "llm",
        SpanRow.start_time >= start,
        SpanRow.start_time < end,
        or_(SpanRow.route.is_(None), SpanRow.route != "shadow"),
    ]
    if deployment is not None:
        where.append(SpanRow.deployment == deployment)
    return where


def _feedback(
    session: Session, project_id: int, deployment: str | None, start: datetime, end: datetime
) -> list[float]:
    query: Any = select(FeedbackRow.score).where(
        FeedbackRow.project_id == project_id,
        FeedbackRow.created_at >= start,
        FeedbackRow.created_at < end,
        FeedbackRow.score.is_not(None),
    )
    if deployment is not None:
        query = query.where(FeedbackRow.deployment == deployment)
    rows = session.execute(query.order_by(FeedbackRow.id.desc()).limit(MAX_FEEDBACK)).scalars()
    return [float(score) for score in rows]
