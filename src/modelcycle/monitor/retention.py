"""What traces keep and for how long: each project's policy, and the purge the worker runs.

The policy holds ``retention_days`` and ``store_raw_text`` (keep prompts and
answers as sent instead of redacted; see ``monitor.redaction``). The trace
writer asks ``keeps_raw_text`` for every batch, answered from memory for
``RAW_TEXT_TTL_S``: a change made in this process applies at once, one made
through another process within that time.

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

import threading
import time
from collections.abc import Callable
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
RAW_TEXT_TTL_S = 5.0
"""How long a project's ``store_raw_text`` is answered from memory."""


class MonitorPolicies:
    """Per-project monitoring policy (retention, raw text)."""

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = RAW_TEXT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._store = store
        self._ttl_s, self._clock = ttl_s, clock
        self._raw_text: dict[int, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def keeps_raw_text(self, project_id: int) -> bool:
        """Whether the project stores prompts and answers unredacted (cached briefly)."""
        now = self._clock()
        with self._lock:
            cached = self._raw_text.get(project_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self._store.read() as session:
            row = session.get(MonitorPolicyRow, project_id)
            keep = bool(row is not None and row.store_raw_text)
        with self._lock:
            self._raw_text[project_id] = (now + self._ttl_s, keep)
        return keep

    def get(self, principal: Principal) -> MonitorPolicy:
        """The caller's project's policy (traces are kept forever until one is set)."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            row = session.get(MonitorPolicyRow, principal.project_id)
            return _policy_out(row)

    def set(self, principal: Principal, update: MonitorPolicyUpdate) -> MonitorPolicy:
        """Change the fields ``update`` names (admins); audited as ``monitor.policy.set``.

        The entry holds both settings before and after, so turning raw text on
        (which stores personal data) is always on record with who did it.
        """
        require(principal, Role.ADMIN)
        given = update.model_fields_set
        with self._store.write() as session:
            row = session.get(MonitorPolicyRow, principal.project_id, with_for_update=True)
            before = None if row is None else _settings(row)
            if row is None:
                row = MonitorPolicyRow(
                    project_id=principal.project_id,
                    updated_by=principal.actor,
                    retention_days=None,
                    store_raw_text=False,
                )
                session.add(row)
            if "retention_days" in given:
                row.retention_days = update.retention_days
            if update.store_raw_text is not None:
                row.store_raw_text = update.store_raw_text
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
                    after=_settings(row),
                ),
            )
            policy = _policy_out(row)
        with self._lock:
            self._raw_text.pop(principal.project_id, None)
        return policy


def _settings(row: MonitorPolicyRow) -> dict[str, object]:
    return {"retention_days": row.retention_days, "store_raw_text": row.store_raw_text}


def _policy_out(row: MonitorPolicyRow | None) -> MonitorPolicy:
    if row is None:
        return MonitorPolicy(retention_days=None, store_raw_text=False)
    return MonitorPolicy(
        retention_days=row.retention_days,
        store_raw_text=row.store_raw_text,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
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
