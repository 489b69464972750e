"""Erase and export everything held about one end user of a project (GDPR arts. 15, 17, 20).

What belongs to a user ``U``: every span of a trace whose root span carries
``user_id = U`` (the user started it), every other span carrying ``U``, the
feedback ``U`` gave, and the feedback on traces left with no span. Stages that
derive data from traces report theirs through the ``modelcycle_erase_user`` /
``modelcycle_export_user`` hooks. Rollups are aggregates without personal data
and are kept.

Erasure first writes this process's queued spans and replays pending spill
files, so nothing written later brings the user's spans back; then it deletes
in batches of ``BATCH``, each its own short transaction. Every statement names
the user (or a trace the user started) and the project, so no other user's data
goes, and running it again finds nothing more to delete. The audit log records
a keyed hash of the user id (``SecretCipher.digest``), never the id itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pluggy
from sqlalchemy import ColumnElement, Select, and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from modelcycle.access import Principal, require
from modelcycle.access.secrets import SecretCipher
from modelcycle.errors import ModelcycleError, StoreError
from modelcycle.monitor.feedback import feedback_out
from modelcycle.monitor.privacy_schemas import Erasure, ErasureRequest, UserExport
from modelcycle.monitor.queries import tree_order
from modelcycle.monitor.recorder import Recorder
from modelcycle.monitor.trace_schemas import Trace
from modelcycle.store import Store, audit
from modelcycle.store.audit import AuditRecord
from modelcycle.store.tables import FeedbackRow, SpanRow
from modelcycle.types import Role

log = logging.getLogger(__name__)

BATCH = 1_000
"""Traces, spans or feedback rows deleted per transaction."""
HASH_PURPOSE = "modelcycle-erased-user"


class UserData:
    """Erasure and export of one end user's traces, feedback and derived data (admins)."""

    def __init__(
        self, store: Store, recorder: Recorder, hooks: pluggy.PluginManager, cipher: SecretCipher
    ):
        self._store = store
        self._recorder = recorder
        self._hooks = hooks
        self._cipher = cipher

    def user_hash(self, user: str) -> str:
        """The pseudonym the audit log records for ``user``."""
        return self._cipher.digest(HASH_PURPOSE, user)

    # -- erase ---------------------------------------------------------------------------

    def erase(self, principal: Principal, request: ErasureRequest) -> Erasure:
        """Delete the user's traces, feedback and derived data; counts per kind."""
        require(principal, Role.ADMIN)
        project_id, user = principal.project_id, request.user
        hashed = self.user_hash(user)
        if request.dry_run:
            with self._store.read() as session:
                counts = _would_erase(session, project_id, user)
            return Erasure(dry_run=True, user_hash=hashed, counts=counts)
        left = self._recorder.replay_pending()
        if left:
            raise StoreError(
                f"{len(left)} spill file(s) of traces could not be written to the database; "
                "nothing was erased: try again once the database answers"
            )
        counts = {"traces": 0, "spans": 0, "feedback": 0}
        self._erase_started_traces(project_id, user, counts)
        self._erase_user_spans(project_id, user, counts)
        self._erase_user_feedback(project_id, user, counts)
        failed = self._erase_derived(project_id, user, counts)
        with self._store.write() as session:
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="privacy.erase",
                    target=f"user:{hashed[:16]}",
                    project=principal.project,
                    after={
                        "user_hash": hashed,
                        "hash_key_id": self._cipher.key_id,
                        "counts": counts,
                        "failed": failed,
                    },
                ),
            )
        return Erasure(dry_run=False, user_hash=hashed, counts=counts, failed=failed)

    def _erase_started_traces(self, project_id: int, user: str, counts: dict[str, int]) -> None:
        while True:
            with self._store.write() as session:
                trace_ids = list(
                    session.execute(_started(project_id, user).limit(BATCH)).scalars().all()
                )
                if not trace_ids:
                    return
                counts["spans"] += _deleted(
                    session,
                    delete(SpanRow)
                    .where(SpanRow.project_id == project_id, SpanRow.trace_id.in_(trace_ids))
                    .returning(SpanRow.id),
                )
                counts["feedback"] += _deleted(
                    session,
                    delete(FeedbackRow)
                    .where(
                        FeedbackRow.project_id == project_id, FeedbackRow.trace_id.in_(trace_ids)
                    )
                    .returning(FeedbackRow.id),
                )
                counts["traces"] += len(trace_ids)

    def _erase_user_spans(self, project_id: int, user: str, counts: dict[str, int]) -> None:
        """The user's spans in traces someone else (or nobody) started."""
        while True:
            with self._store.write() as session:
                found = session.execute(
                    select(SpanRow.id, SpanRow.trace_id)
                    .where(SpanRow.project_id == project_id, SpanRow.user_id == user)
                    .limit(BATCH)
                ).all()
                if not found:
                    return
                counts["spans"] += _deleted(
                    session,
                    delete(SpanRow)
                    .where(SpanRow.id.in_([row[0] for row in found]))
                    .returning(SpanRow.id),
                )
                touched = {row[1] for row in found}
                remaining = set(
                    session.execute(
                        select(SpanRow.trace_id)
                        .where(SpanRow.project_id == project_id, SpanRow.trace_id.in_(touched))
                        .distinct()
                    ).scalars()
                )
                emptied = touched - remaining
                counts["traces"] += len(emptied)
                if emptied:
                    counts["feedback"] += _deleted(
                        session,
                        delete(FeedbackRow)
                        .where(
                            FeedbackRow.project_id == project_id,
                            FeedbackRow.trace_id.in_(emptied),
                        )
                        .returning(FeedbackRow.id),
                    )

    def _erase_user_feedback(self, project_id: int, user: str, counts: dict[str, int]) -> None:
        while True:
            with self._store.write() as session:
                ids = list(
                    session.execute(
                        select(FeedbackRow.id)
                        .where(FeedbackRow.project_id == project_id, FeedbackRow.user_id == user)
                        .limit(BATCH)
                    ).scalars()
                )
                if not ids:
                    return
                counts["feedback"] += _deleted(
                    session,
                    delete(FeedbackRow).where(FeedbackRow.id.in_(ids)).returning(FeedbackRow.id),
                )

    def _erase_derived(self, project_id: int, user: str, counts: dict[str, int]) -> list[str]:
        """Call each ``modelcycle_erase_user`` implementation; the names of those that raised."""
        failed: list[str] = []
        for impl in self._hooks.hook.modelcycle_erase_user.get_hookimpls():
            arguments = {"project_id": project_id, "user": user}
            try:
                reported = impl.function(**{name: arguments[name] for name in impl.argnames})
            except Exception:
                log.exception("plugin %s failed to erase a user's data", impl.plugin_name)
                failed.append(impl.plugin_name)
                continue
            if not isinstance(reported, Mapping):
                continue
            for kind, count in reported.items():
                counts[str(kind)] = counts.get(str(kind), 0) + int(count)
        return failed

    # -- export --------------------------------------------------------------------------

    def export(self, principal: Principal, user: str) -> UserExport:
        """Every trace, span and feedback of the user, and what stages hold, as stored."""
        require(principal, Role.ADMIN)
        project_id = principal.project_id
        self._recorder.flush(timeout_s=5.0)
        with self._store.read() as session:
            spans = (
                session.execute(
                    select(SpanRow)
                    .where(_belongs(project_id, user))
                    .order_by(SpanRow.trace_id, SpanRow.start_time, SpanRow.id)
                )
                .scalars()
                .all()
            )
            judged = (
                session.execute(
                    select(FeedbackRow)
                    .where(_feedback_of(project_id, user))
                    .order_by(FeedbackRow.created_at, FeedbackRow.id)
                )
                .scalars()
                .all()
            )
        by_trace: dict[str, list[SpanRow]] = {}
        for row in spans:
            by_trace.setdefault(row.trace_id, []).append(row)
        feedback = [feedback_out(row) for row in judged]
        traces = [
            Trace(
                trace_id=trace_id,
                spans=tree_order(rows),
                feedback=[item for item in feedback if item.trace_id == trace_id],
            )
            for trace_id, rows in by_trace.items()
        ]
        return UserExport(
            user=user,
            project=principal.project,
            exported_at=datetime.now(UTC),
            traces=traces,
            feedback=[item for item in feedback if item.trace_id not in by_trace],
            stages=self._export_derived(project_id, user),
        )

    def _export_derived(self, project_id: int, user: str) -> dict[str, Any]:
        stages: dict[str, Any] = {}
        for impl in self._hooks.hook.modelcycle_export_user.get_hookimpls():
            arguments = {"project_id": project_id, "user": user}
            try:
                found = impl.function(**{name: arguments[name] for name in impl.argnames})
            except Exception as exc:  # an incomplete export would mislead: refuse it
                log.exception("plugin %s failed to export a user's data", impl.plugin_name)
                raise ModelcycleError(
                    f"plugin '{impl.plugin_name}' failed to export the user's data "
                    f"({type(exc).__name__}); see the server log, then try again",
                    code="export_failed",
                ) from None
            if isinstance(found, Mapping):
                stages.update({str(kind): data for kind, data in found.items()})
        return stages


# -- what belongs to a user, as SQL ------------------------------------------------------


def _started(project_id: int, user: str) -> Select[str]:
    """Trace ids whose root span carries ``user`` (never correlated with an outer query)."""
    return (
        select(SpanRow.trace_id)
        .where(
            SpanRow.project_id == project_id,
            SpanRow.user_id == user,
            SpanRow.parent_span_id.is_(None),
        )
        .distinct()
        .correlate(None)
    )


def _belongs(project_id: int, user: str) -> ColumnElement[bool]:
    """Whether a span is the user's: it carries the user, or its trace was started by them."""
    return and_(
        SpanRow.project_id == project_id,
        or_(SpanRow.user_id == user, SpanRow.trace_id.in_(_started(project_id, user))),
    )


def _emptied(project_id: int, user: str) -> Select[str]:
    """Traces every span of which is the user's: erasure leaves them with none."""
    other = aliased(SpanRow)
    kept = exists().where(  # a span of the same trace that is not the user's
        other.project_id == project_id,
        other.trace_id == SpanRow.trace_id,
        or_(other.user_id.is_(None), other.user_id != user),
        other.trace_id.not_in(_started(project_id, user)),
    )
    return select(SpanRow.trace_id).where(_belongs(project_id, user), ~kept).distinct()


def _feedback_of(project_id: int, user: str) -> ColumnElement[bool]:
    return and_(
        FeedbackRow.project_id == project_id,
        or_(FeedbackRow.user_id == user, FeedbackRow.trace_id.in_(_emptied(project_id, user))),
    )


def _would_erase(session: Session, project_id: int, user: str) -> dict[str, int]:
    def count(query: Select[Any]) -> int:
        return int(session.execute(select(func.count()).select_from(query.subquery())).scalar_one())

    return {
        "traces": count(_emptied(project_id, user)),
        "spans": count(select(SpanRow.id).where(_belongs(project_id, user))),
        "feedback": count(select(FeedbackRow.id).where(_feedback_of(project_id, user))),
    }


def _deleted(session: Session, statement: Any) -> int:
    return len(session.execute(statement).all())
