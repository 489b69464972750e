"""``Scheduler``: recurring work, enqueued as jobs when it falls due.

Time is cut into slots of ``interval_s`` seconds (counted from the Unix epoch,
so a daily schedule runs at midnight UTC after its first run). Each due
schedule enqueues one job per slot, with the dedupe key ``schedule:<id>:<slot>``:
several workers ticking at once enqueue it once, a worker that was down for a
day enqueues one job, not a backlog, and a slot whose previous job is still
waiting is skipped.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle.errors import InvalidInput, NotFound
from modelcycle.jobs.queue import MAX_KIND, Jobs
from modelcycle.jobs.schemas import JobState, ScheduleView
from modelcycle.store import Store
from modelcycle.store.tables import JobRow, ScheduleRow, utcnow

MAX_NAME = 128
MAX_INTERVAL_S = 366 * 86_400
_PENDING = (JobState.QUEUED, JobState.VALIDATING_FILES)


def slot_of(now: datetime, interval_s: int) -> int:
    """The number of the ``interval_s``-long slot ``now`` falls in."""
    return int(now.timestamp()) // interval_s


class Scheduler:
    """Schedules in the database; ``tick`` turns the due ones into jobs."""

    def __init__(self, store: Store, jobs: Jobs):
        self._store = store
        self._jobs = jobs

    def ensure(
        self,
        name: str,
        kind: str,
        payload: Mapping[str, Any],
        *,
        interval_s: int,
        project_id: int | None = None,
        actor: str = "system",
        session: Session | None = None,
    ) -> ScheduleView:
        """Create the schedule ``name`` or bring it up to date (idempotent).

        A new schedule is due at once; a changed interval takes effect from the
        next run (or sooner, when it shortened).
        """
        if not name or len(name) > MAX_NAME:
            raise InvalidInput(f"schedule name must be 1 to {MAX_NAME} characters", param="name")
        if not kind or len(kind) > MAX_KIND:
            raise InvalidInput(f"job kind must be 1 to {MAX_KIND} characters", param="kind")
        if not 1 <= interval_s <= MAX_INTERVAL_S:
            raise InvalidInput(
                f"interval_s must be between 1 and {MAX_INTERVAL_S}", param="interval_s"
            )
        if session is not None:
            return self._upsert(session, name, kind, payload, interval_s, project_id, actor)
        with self._store.write() as own:
            return self._upsert(own, name, kind, payload, interval_s, project_id, actor)

    def _upsert(
        self,
        session: Session,
        name: str,
        kind: str,
        payload: Mapping[str, Any],
        interval_s: int,
        project_id: int | None,
        actor: str,
    ) -> ScheduleView:
        now = utcnow()
        row = self._find(session, name, lock=True)
        if row is None:
            row = ScheduleRow(
                name=name,
                project_id=project_id,
                kind=kind,
                payload=dict(payload),
                interval_s=interval_s,
                next_run_at=now,
                enabled=True,
                created_by=actor[:100],
                created_at=now,
            )
            session.add(row)
        else:
            row.kind, row.payload, row.project_id = kind, dict(payload), project_id
            row.next_run_at = min(row.next_run_at, now + timedelta(seconds=interval_s))
            row.interval_s, row.enabled = interval_s, True
        session.flush()
        return ScheduleView.of(row)

    def _find(self, session: Session, name: str, *, lock: bool = False) -> ScheduleRow | None:
        query = select(ScheduleRow).where(ScheduleRow.name == name)
        if lock and not self._store.is_sqlite:
            query = query.with_for_update()
        return session.execute(query).scalar_one_or_none()

    def find(self, session: Session, name: str) -> ScheduleView | None:
        """The schedule ``name`` as the caller's transaction sees it, or ``None``."""
        row = self._find(session, name, lock=True)
        return ScheduleView.of(row) if row is not None else None

    def get(self, name: str) -> ScheduleView:
        """One schedule; ``NotFound`` when there is none."""
        with self._store.read() as session:
            row = self._find(session, name)
            if row is None:
                raise NotFound(f"schedule {name!r} not found")
            return ScheduleView.of(row)

    def list(
        self, *, project_id: int | None, kind: str | None = None, prefix: str = ""
    ) -> builtins.list[ScheduleView]:
        """Schedules of a project (``None``: the platform's own), by name."""
        query = select(ScheduleRow).where(
            ScheduleRow.project_id.is_(None)
            if project_id is None
            else ScheduleRow.project_id == project_id
        )
        if kind is not None:
            query = query.where(ScheduleRow.kind == kind)
        if prefix:
            query = query.where(ScheduleRow.name.startswith(prefix, autoescape=True))
        with self._store.read() as session:
            rows = session.execute(query.order_by(ScheduleRow.name)).scalars()
            return [ScheduleView.of(row) for row in rows]

    def remove(self, name: str, *, session: Session | None = None) -> ScheduleView:
        """Delete a schedule (jobs it already enqueued stay); ``NotFound`` when absent."""
        if session is None:
            with self._store.write() as own:
                return self.remove(name, session=own)
        row = self._find(session, name, lock=True)
        if row is None:
            raise NotFound(f"schedule {name!r} not found")
        view = ScheduleView.of(row)
        session.delete(row)
        return view

    def tick(self, now: datetime | None = None) -> builtins.list[int]:
        """Enqueue a job for each due schedule; the ids of the jobs enqueued."""
        now = now or utcnow()
        enqueued: list[int] = []
        with self._store.read() as session:  # most ticks find nothing: no write lock then
            due = select(ScheduleRow.id).where(
                ScheduleRow.enabled.is_(True), ScheduleRow.next_run_at <= now
            )
            if session.execute(due.limit(1)).first() is None:
                return enqueued
        with self._store.write() as session:
            query = (
                select(ScheduleRow)
                .where(ScheduleRow.enabled.is_(True), ScheduleRow.next_run_at <= now)
                .order_by(ScheduleRow.next_run_at)
            )
            if not self._store.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            for row in session.execute(query).scalars().all():
                job_id = self._fire(session, row, now)
                if job_id is not None:
                    enqueued.append(job_id)
        return enqueued

    def _fire(self, session: Session, row: ScheduleRow, now: datetime) -> int | None:
        slot = slot_of(now, row.interval_s)
        row.next_run_at = datetime.fromtimestamp((slot + 1) * row.interval_s, UTC)
        if row.last_job_id is not None:
            last_state = session.execute(
                select(JobRow.state).where(JobRow.id == row.last_job_id)
            ).scalar_one_or_none()
            if last_state in _PENDING:
                return None  # the previous run has not started: one waiting run is enough
        key = f"schedule:{row.id}:{slot}"
        if session.execute(select(JobRow.id).where(JobRow.dedupe_key == key)).first():
            return None
        job = self._jobs.enqueue(
            row.kind,
            row.payload,
            project_id=row.project_id,
            actor=f"schedule:{row.name}"[:100],
            dedupe_key=key,
            session=session,
        )
        row.last_job_id = job.id
        return job.id
