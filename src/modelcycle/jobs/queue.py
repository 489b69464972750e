"""The durable job queue: enqueue, read, cancel and claim jobs.

Claiming is one transaction that picks the next due job and writes a lease on
it: SQLite serialises writers (``BEGIN IMMEDIATE``), PostgreSQL skips rows
another claimer holds (``FOR UPDATE SKIP LOCKED``), so two workers never take
the same job. What a lease holder may do next (renew, report progress, save a
checkpoint, finish, fail, release) lives in ``modelcycle.jobs.leases``.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.jobs.leases import LeaseOps
from modelcycle.jobs.schemas import FINISHED_STATES, JobEventView, JobState, JobView
from modelcycle.store import Page, Store, audit, encode_cursor
from modelcycle.store.audit import AuditRecord
from modelcycle.store.pagination import check_limit, decode_cursor
from modelcycle.store.tables import JobEventRow, JobRow, ProjectRow, utcnow

MAX_KIND = 64
MAX_DEDUPE_KEY = 128
MAX_OWNER = 64
_CLAIM_SCAN = 20
"""Expired jobs settled (cancelled or failed for good) per claim before giving up."""


def _check_enqueue(kind: str, dedupe_key: str | None, max_attempts: int, state: str) -> JobState:
    if not kind or len(kind) > MAX_KIND:
        raise InvalidInput(f"job kind must be 1 to {MAX_KIND} characters", param="kind")
    if dedupe_key is not None and not 0 < len(dedupe_key) <= MAX_DEDUPE_KEY:
        raise InvalidInput(
            f"dedupe_key must be 1 to {MAX_DEDUPE_KEY} characters", param="dedupe_key"
        )
    if max_attempts < 1:
        raise InvalidInput("max_attempts must be at least 1", param="max_attempts")
    if state not in (JobState.QUEUED, JobState.VALIDATING_FILES):
        raise InvalidInput(
            "a new job starts 'queued' or 'validating_files', not " + repr(state), param="state"
        )
    return JobState(state)


class Jobs(LeaseOps):
    """Jobs of every project in one database.

    Reads and ``cancel`` take no principal: this layer sits below access
    control, so callers (the API, the services) check roles and projects.
    """

    def __init__(self, store: Store, *, retry_base_s: float = 10.0, retry_max_s: float = 600.0):
        super().__init__(store, retry_base_s=retry_base_s, retry_max_s=retry_max_s)

    # -- creating ------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        project_id: int | None,
        actor: str,
        dedupe_key: str | None = None,
        run_after: datetime | None = None,
        max_attempts: int = 3,
        priority: int = 0,
        state: str = "queued",
        session: Session | None = None,
    ) -> JobView:
        """Add a job; with a ``dedupe_key`` already used, the existing job is returned.

        With ``session`` the job is written in the caller's transaction (to commit
        it with an audit entry, say) and dedupe conflicts surface on commit.
        """
        first = _check_enqueue(kind, dedupe_key, max_attempts, state)
        if session is not None:
            return self._insert(session, kind, payload, project_id, actor, dedupe_key,
                                run_after, max_attempts, priority, first)  # fmt: skip
        try:
            with self._store.write() as own:
                if dedupe_key is not None:
                    found = self._by_dedupe_key(own, dedupe_key)
                    if found is not None:
                        return JobView.of(found)
                return self._insert(own, kind, payload, project_id, actor, dedupe_key,
                                    run_after, max_attempts, priority, first)  # fmt: skip
        except IntegrityError:
            # Another enqueuer won the race for this dedupe_key between our read and insert.
            with self._store.read() as own:
                found = self._by_dedupe_key(own, dedupe_key) if dedupe_key else None
                if found is None:
                    raise
                return JobView.of(found)

    def _insert(
        self,
        session: Session,
        kind: str,
        payload: Mapping[str, Any],
        project_id: int | None,
        actor: str,
        dedupe_key: str | None,
        run_after: datetime | None,
        max_attempts: int,
        priority: int,
        state: JobState,
    ) -> JobView:
        now = utcnow()
        row = JobRow(
            project_id=project_id,
            kind=kind,
            payload=dict(payload),
            state=state,
            priority=priority,
            attempts=0,
            max_attempts=max_attempts,
            run_after=run_after or now,
            created_by=actor[:100],
            created_at=now,
            dedupe_key=dedupe_key,
            cancel_requested=False,
        )
        session.add(row)
        session.flush()
        self._event(session, row.id, "info", f"created by {actor} ({state})")
        return JobView.of(row)

    @staticmethod
    def _by_dedupe_key(session: Session, dedupe_key: str) -> JobRow | None:
        return session.execute(
            select(JobRow).where(JobRow.dedupe_key == dedupe_key)
        ).scalar_one_or_none()

    def mark_validated(self, job_id: int) -> JobView:
        """``validating_files`` -> ``queued``: the job's inputs were found good."""
        with self._store.write() as session:
            row = self._locked(session, job_id)
            if row.state != JobState.VALIDATING_FILES:
                raise Conflict(f"job {job_id} is {row.state}, not validating_files")
            row.state, row.run_after = JobState.QUEUED, utcnow()
            self._event(session, job_id, "info", "inputs validated; queued")
            return JobView.of(row)

    def mark_invalid(self, job_id: int, error: str) -> JobView:
        """``validating_files`` -> ``failed`` with the reasons; nothing ever ran."""
        with self._store.write() as session:
            row = self._locked(session, job_id)
            if row.state != JobState.VALIDATING_FILES:
                raise Conflict(f"job {job_id} is {row.state}, not validating_files")
            row.state, row.error, row.finished_at = JobState.FAILED, error, utcnow()
            self._event(session, job_id, "error", f"inputs rejected: {error}")
            return JobView.of(row)

    # -- reading -------------------------------------------------------------------

    def get(self, job_id: int) -> JobView:
        """One job; ``NotFound`` when there is none."""
        with self._store.read() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"job {job_id} not found")
            return JobView.of(row)

    def list(
        self,
        *,
        project_id: int | None,
        kind: str | None = None,
        state: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        include_platform: bool = False,
    ) -> Page[JobView]:
        """Jobs of a project (``None``: the platform's own), newest first.

        ``include_platform`` adds the platform's jobs to a project's (for the
        operators' project).
        """
        before, limit = decode_cursor(cursor), check_limit(limit)
        scope = (
            JobRow.project_id.is_(None) if project_id is None else JobRow.project_id == project_id
        )
        if include_platform and project_id is not None:
            scope = or_(scope, JobRow.project_id.is_(None))
        query = select(JobRow).where(scope)
        if before:
            query = query.where(JobRow.id < before)
        if kind is not None:
            query = query.where(JobRow.kind == kind)
        if state is not None:
            if state not in JobState.__members__.values():
                raise InvalidInput(f"unknown job state {state!r}", param="state")
            query = query.where(JobRow.state == state)
        with self._store.read() as session:
            rows = session.execute(query.order_by(JobRow.id.desc()).limit(limit + 1)).scalars()
            found = rows.all()
        items = [JobView.of(row) for row in found[:limit]]
        return Page(items, encode_cursor(items[-1].id) if len(found) > limit else None)

    def events(
        self, job_id: int, *, after_id: int = 0, limit: int = 500
    ) -> builtins.list[JobEventView]:
        """A job's events in order, after the event ``after_id``."""
        check_limit(limit)
        with self._store.read() as session:
            rows = session.execute(
                select(JobEventRow)
                .where(JobEventRow.job_id == job_id, JobEventRow.id > after_id)
                .order_by(JobEventRow.id)
                .limit(limit)
            ).scalars()
            return [JobEventView.of(row) for row in rows]

    # -- cancelling ----------------------------------------------------------------

    def cancel(self, job_id: int, *, actor: str) -> JobView:
        """Cancel a job: a waiting one at once, a running one when its handler next looks.

        Audited as ``job.cancel``. A finished job is a ``Conflict``.
        """
        with self._store.write() as session:
            row = self._locked(session, job_id)
            state = JobState(row.state)
            if state.finished:
                raise Conflict(
                    f"job {job_id} is already {state}; "
                    "only a waiting or running job can be cancelled"
                )
            before = {"state": row.state, "cancel_requested": row.cancel_requested}
            if state == JobState.RUNNING:
                row.cancel_requested = True
                self._event(session, job_id, "warning", f"cancel requested by {actor}")
            else:
                row.state, row.finished_at, row.cancel_requested = (
                    JobState.CANCELLED,
                    utcnow(),
                    True,
                )
                self._event(session, job_id, "warning", f"cancelled by {actor}")
            audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action="job.cancel",
                    target=f"job:{job_id}",
                    project=self._project_name(session, row.project_id),
                    before=before,
                    after={"state": row.state, "cancel_requested": row.cancel_requested},
                ),
            )
            return JobView.of(row)

    @staticmethod
    def _project_name(session: Session, project_id: int | None) -> str | None:
        if project_id is None:
            return None
        return session.execute(
            select(ProjectRow.name).where(ProjectRow.id == project_id)
        ).scalar_one_or_none()

    # -- claiming ------------------------------------------------------------------

    def claim(self, owner: str, kinds: Collection[str], lease_s: float) -> JobView | None:
        """Take the next due job of one of ``kinds`` for ``lease_s`` seconds, or ``None``.

        A running job whose lease expired (its worker died) is taken again; it
        counts as a new attempt, and one out of attempts is failed instead.
        """
        if not owner or len(owner) > MAX_OWNER:
            raise InvalidInput(f"worker name must be 1 to {MAX_OWNER} characters", param="owner")
        if not kinds or not self._any_claimable(kinds):
            return None
        with self._store.write() as session:
            now = utcnow()
            for _ in range(_CLAIM_SCAN):
                row = self._next(session, self._expired(kinds, now)) or self._next(
                    session, self._due(kinds, now)
                )
                if row is None:
                    return None
                if self._settle_lost(session, row, now):
                    continue
                resumed = row.state == JobState.RUNNING
                row.state, row.attempts = JobState.RUNNING, row.attempts + 1
                row.lease_owner, row.lease_expires_at = owner, now + timedelta(seconds=lease_s)
                row.started_at = row.started_at or now
                how = "resumed after its worker's lease expired" if resumed else "started"
                self._event(session, row.id, "info", f"{how} by {owner} (attempt {row.attempts})")
                return JobView.of(row)
        return None

    def _any_claimable(self, kinds: Collection[str]) -> bool:
        # A read first: an idle worker polls every second, and on SQLite a write
        # transaction would take the database's one write lock each time.
        now = utcnow()
        with self._store.read() as session:
            due = session.execute(self._due(kinds, now).with_only_columns(JobRow.id).limit(1))
            if due.first() is not None:
                return True
            expired = self._expired(kinds, now).with_only_columns(JobRow.id).limit(1)
            return session.execute(expired).first() is not None

    @staticmethod
    def _due(kinds: Collection[str], now: datetime) -> Select[JobRow]:
        return (
            select(JobRow)
            .where(JobRow.state == JobState.QUEUED, JobRow.run_after <= now, JobRow.kind.in_(kinds))
            .order_by(JobRow.priority.desc(), JobRow.run_after, JobRow.id)
        )

    @staticmethod
    def _expired(kinds: Collection[str], now: datetime) -> Select[JobRow]:
        return (
            select(JobRow)
            .where(
                JobRow.state == JobState.RUNNING,
                JobRow.lease_expires_at < now,
                JobRow.kind.in_(kinds),
            )
            .order_by(JobRow.priority.desc(), JobRow.lease_expires_at, JobRow.id)
        )

    def _next(self, session: Session, query: Select[JobRow]) -> JobRow | None:
        if not self._store.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        return session.execute(query.limit(1)).scalar_one_or_none()

    def _settle_lost(self, session: Session, row: JobRow, now: datetime) -> bool:
        """Finish a job whose worker died, when it must not run again; ``True`` if settled."""
        if row.state != JobState.RUNNING:
            return False
        lost = f"worker {row.lease_owner} stopped renewing its lease"
        if row.cancel_requested:
            row.state = JobState.CANCELLED
            self._event(session, row.id, "warning", f"cancelled ({lost})")
        elif row.attempts >= row.max_attempts:
            row.state = JobState.FAILED
            row.error = f"{lost}; no attempts left ({row.attempts} of {row.max_attempts})"
            self._event(session, row.id, "error", row.error)
        else:
            return False
        row.lease_owner, row.lease_expires_at, row.finished_at = None, None, now
        return True

    # -- housekeeping --------------------------------------------------------------

    def purge(self, *, finished_before: datetime) -> int:
        """Delete finished jobs (and their events) that ended before ``finished_before``."""
        with self._store.write() as session:
            ids = select(JobRow.id).where(
                JobRow.state.in_(FINISHED_STATES), JobRow.finished_at < finished_before
            )
            session.execute(delete(JobEventRow).where(JobEventRow.job_id.in_(ids)))
            result = session.execute(
                delete(JobRow).where(
                    and_(JobRow.state.in_(FINISHED_STATES), JobRow.finished_at < finished_before)
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)
