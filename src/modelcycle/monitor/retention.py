"""How long traces are kept: each project's policy, and the purge the worker runs.

``purge_expired`` deletes, for each project with ``retention_days``, the spans
that started before the cut-off, and the feedback of traces left with no span
(feedback without its trace can be neither shown nor linked to a version).
Rollups are kept: they hold no content, are small (one row per minute,
deployment, version and route) and carry the long-term trends. Deletion runs in
batches of ``BATCH`` spans, each its own short transaction, so the trace writer
and the API are never locked out for long. Each purge that deleted something is
audited as ``monitor.purge`` by ``system:retention``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from modelcycle.access import Principal, require
from modelcycle.monitor.trace_schemas import MonitorPolicy, MonitorPolicyUpdate
from modelcycle.store import Store, audit
from modelcycle.store.audit import AuditRecord
from modelcycle.store.tables import (
    FeedbackRow,
    MonitorPolicyRow,
    ProjectRow,
    SpanRow,
    utcnow,
)
from modelcycle.types import Role

BATCH = 5_000
"""Spans deleted per transaction."""
ACTOR = "system:retention"


class MonitorPolicies:
    """Per-project monitoring policy (retention)."""

    def __init__(self, store: Store):
        self._store = store

    def get(self, principal: Principal) -> MonitorPolicy:
        """The caller's project's policy (traces are kept forever until one is set)."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            row = session.get(MonitorPolicyRow, principal.project_id)
            return _policy_out(row)

    def set(self, principal: Principal, update: MonitorPolicyUpdate) -> MonitorPolicy:
        """Replace the project's policy; audited as ``monitor.policy.set``."""
        require(principal, Role.ADMIN)
        with self._store.write() as session:
            row = session.get(MonitorPolicyRow, principal.project_id, with_for_update=True)
            before = None if row is None else {"retention_days": row.retention_days}
            if row is None:
                row = MonitorPolicyRow(project_id=principal.project_id, updated_by=principal.actor)
                session.add(row)
            row.retention_days = update.retention_days
            row.updated_by, row.updated_at = principal.actor, utcnow()
            session.flush()
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="monitor.policy.set",
                    target="monitor:policy",
                    project=principal.project,
                    before=before,
                    after={"retention_days": row.retention_days},
                ),
            )
            return _policy_out(row)


def _policy_out(row: MonitorPolicyRow | None) -> MonitorPolicy:
    if row is None:
        return MonitorPolicy(retention_days=None)
    return MonitorPolicy(
        retention_days=row.retention_days, updated_by=row.updated_by, updated_at=row.updated_at
    )


def purge_expired(store: Store, *, now: datetime | None = None) -> int:
    """Delete spans past each project's retention (and orphaned feedback); returns spans deleted."""
    now = now or datetime.now(UTC)
    with store.read() as session:
        policies = session.execute(
            select(MonitorPolicyRow.project_id, MonitorPolicyRow.retention_days, ProjectRow.name)
            .join(ProjectRow, ProjectRow.id == MonitorPolicyRow.project_id)
            .where(MonitorPolicyRow.retention_days.is_not(None))
        ).all()
    total = 0
    for project_id, days, project in policies:
        if days is None:  # filtered out above; the type does not know
            continue
        cutoff = now - timedelta(days=days)
        spans, feedback = _purge_project(store, project_id, cutoff)
        if spans or feedback:
            with store.write() as session:
                audit.append(
                    session,
                    AuditRecord(
                        actor=ACTOR,
                        action="monitor.purge",
                        target="monitor:traces",
                        project=project,
                        after={
                            "before": cutoff.isoformat(),
                            "spans": spans,
                            "feedback": feedback,
                        },
                    ),
                )
        total += spans
    return total


def _purge_project(store: Store, project_id: int, cutoff: datetime) -> tuple[int, int]:
    spans = feedback = 0
    while True:
        with store.write() as session:
            ids = (
                session.execute(
                    select(SpanRow.id)
                    .where(SpanRow.project_id == project_id, SpanRow.start_time < cutoff)
                    .limit(BATCH)
                )
                .scalars()
                .all()
            )
            if not ids:
                return spans, feedback
            trace_ids = set(
                session.execute(
                    delete(SpanRow).where(SpanRow.id.in_(ids)).returning(SpanRow.trace_id)
                ).scalars()
            )
            spans += len(ids)
            feedback += _delete_orphaned_feedback(session, project_id, trace_ids)


def _delete_orphaned_feedback(session: Session, project_id: int, trace_ids: set[str]) -> int:
    """Delete the feedback of those of ``trace_ids`` that have no span left."""
    if not trace_ids:
        return 0
    has_spans = exists().where(
        SpanRow.project_id == project_id, SpanRow.trace_id == FeedbackRow.trace_id
    )
    deleted = session.execute(
        delete(FeedbackRow)
        .where(
            FeedbackRow.project_id == project_id,
            FeedbackRow.trace_id.in_(trace_ids),
            ~has_spans,
        )
        .returning(FeedbackRow.id)
    ).all()
    return len(deleted)
