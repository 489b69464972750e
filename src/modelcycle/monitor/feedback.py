"""Feedback on traces: a score, thumbs, label, comment or correction, linked to a version.

Adding feedback is one transaction: the trace is looked up in the caller's
project (404 otherwise), the model call that answered is found (the span given,
else the trace's last non-shadow LLM span), the feedback row is written with
that span's deployment, model and version, a scored feedback is added to the
rollup of that span's minute, version and route (so dashboards and alerts see
feedback per version), and the action is audited.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle.access import Principal, require
from modelcycle.errors import NotFound
from modelcycle.monitor.trace_schemas import Feedback, FeedbackCreate
from modelcycle.monitor.writer import RollupDelta, SpanWriter, minute_of
from modelcycle.store import Store, audit
from modelcycle.store.audit import AuditRecord
from modelcycle.store.tables import FeedbackRow, SpanRow
from modelcycle.types import Role

LLM_KINDS = frozenset({"llm", "embedding"})


def feedback_out(row: FeedbackRow) -> Feedback:
    """The public shape of a feedback row."""
    return Feedback(
        id=row.id,
        trace_id=row.trace_id,
        span_id=row.span_id,
        deployment=row.deployment,
        model=row.model,
        version=row.version,
        score=row.score,
        thumbs=1 if row.thumbs == 1 else -1 if row.thumbs == -1 else None,
        label=row.label,
        comment=row.comment,
        correction=row.correction,
        user_id=row.user_id,
        actor=row.actor,
        attributes=row.attributes,
        created_at=row.created_at,
    )


def trace_not_found(trace_id: str) -> NotFound:
    """The 404 of a trace that is not in the caller's project."""
    return NotFound(f"trace '{trace_id}' not found; search with: modelcycle traces list")


def answering_span(spans: Sequence[Any], span_id: str | None) -> Any | None:
    """The model call a feedback judges: ``span_id`` when given, else the last answer.

    The last-ending LLM span that is not a shadow copy is the one whose answer the
    user saw; a trace without a model call has none.
    """
    if span_id is not None:
        chosen = next((span for span in spans if span.span_id == span_id), None)
        if chosen is None:
            raise NotFound(f"span '{span_id}' is not part of this trace")
        return chosen
    calls = [
        span
        for span in spans
        if span.kind in LLM_KINDS and span.model is not None and span.route != "shadow"
    ]
    return max(calls, key=lambda span: (span.end_time, span.start_time), default=None)


class TraceFeedback:
    """Feedback of the caller's project."""

    def __init__(self, store: Store, writer: SpanWriter):
        self._store = store
        self._writer = writer

    def add(self, principal: Principal, trace_id: str, body: FeedbackCreate) -> Feedback:
        """Store feedback on a trace, count it in its version's rollup, audit it."""
        # Applications collect their users' feedback: ``app`` keys may send it.
        require(principal, Role.APP)
        score = body.score
        if body.thumbs is not None:
            score = 1.0 if body.thumbs == 1 else 0.0
        with self._store.write() as session:
            spans = self._spans(session, principal.project_id, trace_id)
            answered = answering_span(spans, body.span_id)
            row = FeedbackRow(
                project_id=principal.project_id,
                trace_id=trace_id,
                span_id=answered.span_id if answered is not None else None,
                deployment=answered.deployment if answered is not None else None,
                model=answered.model if answered is not None else None,
                version=answered.version if answered is not None else None,
                score=score,
                thumbs=body.thumbs,
                label=body.label,
                comment=body.comment,
                correction=body.correction,
                user_id=body.user_id,
                actor=principal.actor,
                attributes=body.attributes,
            )
            session.add(row)
            session.flush()
            if score is not None and answered is not None and answered.kind in LLM_KINDS:
                self._fold(session, principal.project_id, answered, score)
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="feedback.add",
                    target=f"trace:{trace_id}",
                    project=principal.project,
                    after={
                        "id": row.id,
                        "span_id": row.span_id,
                        "model": row.model,
                        "version": row.version,
                        "score": score,
                        "thumbs": body.thumbs,
                        "label": body.label,
                        "comment": body.comment is not None,
                        "correction": body.correction is not None,
                    },
                ),
            )
            return feedback_out(row)

    def list(self, principal: Principal, trace_id: str) -> builtins.list[Feedback]:
        """Feedback of a trace, oldest first; 404 when the trace is unknown."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            exists = session.execute(
                select(SpanRow.id)
                .where(SpanRow.project_id == principal.project_id, SpanRow.trace_id == trace_id)
                .limit(1)
            ).first()
            if exists is None:
                raise trace_not_found(trace_id)
            rows = session.execute(
                select(FeedbackRow)
                .where(
                    FeedbackRow.project_id == principal.project_id,
                    FeedbackRow.trace_id == trace_id,
                )
                .order_by(FeedbackRow.created_at, FeedbackRow.id)
            ).scalars()
            return [feedback_out(row) for row in rows]

    @staticmethod
    def _spans(session: Session, project_id: int, trace_id: str) -> Sequence[Any]:
        spans = session.execute(
            select(
                SpanRow.span_id,
                SpanRow.kind,
                SpanRow.start_time,
                SpanRow.end_time,
                SpanRow.deployment,
                SpanRow.model,
                SpanRow.version,
                SpanRow.route,
            ).where(SpanRow.project_id == project_id, SpanRow.trace_id == trace_id)
        ).all()
        if not spans:
            raise trace_not_found(trace_id)
        return spans

    def _fold(self, session: Session, project_id: int, span: Any, score: float) -> None:
        # The same rollup row the span was counted in when it was written.
        key = (
            project_id,
            minute_of(span.start_time),
            span.deployment or "",
            span.model or "",
            span.version or 0,
            span.route or "",
        )
        self._writer.fold(session, {key: RollupDelta(feedback_count=1, feedback_sum=score)})
