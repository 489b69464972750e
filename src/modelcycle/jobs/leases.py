"""What the worker holding a job's lease may do: renew it, report, save, finish, fail, release.

Every operation checks, in its transaction, that ``owner`` still holds the
lease: a worker that stalled past its lease (and whose job another worker took)
gets ``LeaseLost`` instead of overwriting the new holder's work.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle.errors import Conflict, NotFound
from modelcycle.jobs.schemas import JobState, JobView
from modelcycle.store import Store
from modelcycle.store.tables import JobEventRow, JobRow, utcnow

MAX_MESSAGE = 10_000
LEVELS = frozenset({"debug", "info", "warning", "error", "metric"})


class LeaseLost(Conflict):
    """The worker no longer holds the job's lease (it expired and the job moved on)."""


class LeaseOps:
    """Lease-holder operations, shared by ``Jobs``."""

    def __init__(self, store: Store, *, retry_base_s: float, retry_max_s: float):
        self._store = store
        self.retry_base_s = retry_base_s
        """Delay before the first retry of a failed attempt; doubles with each attempt."""
        self.retry_max_s = retry_max_s
        """The longest delay between two attempts."""

    # -- shared helpers ------------------------------------------------------------

    @staticmethod
    def _event(
        session: Session,
        job_id: int,
        level: str,
        message: str,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        session.add(
            JobEventRow(
                job_id=job_id,
                at=utcnow(),
                level=level,
                message=message[:MAX_MESSAGE],
                data=dict(data) if data is not None else None,
            )
        )

    def _locked(self, session: Session, job_id: int) -> JobRow:
        query = select(JobRow).where(JobRow.id == job_id)
        if not self._store.is_sqlite:
            query = query.with_for_update()
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            raise NotFound(f"job {job_id} not found")
        return row

    def _held(self, session: Session, job_id: int, owner: str) -> JobRow:
        row = self._locked(session, job_id)
        if row.state != JobState.RUNNING or row.lease_owner != owner:
            raise LeaseLost(
                f"job {job_id} is no longer held by {owner} (now {row.state}"
                + (f", held by {row.lease_owner})" if row.lease_owner else ")")
            )
        return row

    @staticmethod
    def _extend(row: JobRow, lease_s: float) -> None:
        row.lease_expires_at = utcnow() + timedelta(seconds=lease_s)

    # -- while running -------------------------------------------------------------

    def log(
        self,
        job_id: int,
        message: str,
        *,
        level: str = "info",
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Append a log line (or, with ``level="metric"``, a metric point) to a job."""
        if level not in LEVELS:
            raise ValueError(f"log level must be one of {sorted(LEVELS)}, not {level!r}")
        with self._store.write() as session:
            self._event(session, job_id, level, message, data)

    def renew(self, job_id: int, owner: str, lease_s: float) -> bool:
        """Extend the lease by ``lease_s`` from now; ``True`` when a cancel was requested."""
        with self._store.write() as session:
            row = self._held(session, job_id, owner)
            self._extend(row, lease_s)
            return row.cancel_requested

    def report_progress(
        self, job_id: int, owner: str, fraction: float, metrics: Mapping[str, float], lease_s: float
    ) -> bool:
        """Store progress (and a metric point when ``metrics``); renews the lease.

        Returns whether a cancel was requested.
        """
        with self._store.write() as session:
            row = self._held(session, job_id, owner)
            row.progress = min(1.0, max(0.0, fraction))
            self._extend(row, lease_s)
            if metrics:
                point = {"progress": row.progress, **{k: float(v) for k, v in metrics.items()}}
                shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
                self._event(session, job_id, "metric", f"{row.progress:.0%} {shown}", point)
            return row.cancel_requested

    def save_checkpoint(
        self, job_id: int, owner: str, state: Mapping[str, Any], lease_s: float
    ) -> bool:
        """Store what the handler needs to resume; renews the lease. Returns cancel requested."""
        with self._store.write() as session:
            row = self._held(session, job_id, owner)
            row.checkpoint = dict(state)
            self._extend(row, lease_s)
            self._event(session, job_id, "info", "checkpoint saved", {"keys": sorted(state)})
            return row.cancel_requested

    # -- ending an attempt ---------------------------------------------------------

    def finish(self, job_id: int, owner: str, result: Mapping[str, Any] | None) -> JobView:
        """The handler returned: ``succeeded``, or ``cancelled`` when a cancel was requested.

        A handler whose result says ``{"status": "succeeded"}`` did all its work
        (a tuned version registered, say) before it saw the cancel: the job
        succeeded, or its state would contradict what it left behind.
        """
        with self._store.write() as session:
            row = self._held(session, job_id, owner)
            row.result = dict(result) if result is not None else None
            row.finished_at = utcnow()
            row.lease_owner, row.lease_expires_at = None, None
            completed = result is not None and result.get("status") == "succeeded"
            if row.cancel_requested and completed:
                row.state, row.progress = JobState.SUCCEEDED, 1.0
                self._event(session, job_id, "warning", "finished before the cancel took effect")
            elif row.cancel_requested:
                row.state = JobState.CANCELLED
                self._event(session, job_id, "warning", "cancelled while running; handler stopped")
            else:
                row.state, row.progress = JobState.SUCCEEDED, 1.0
                self._event(session, job_id, "info", "succeeded")
            return JobView.of(row)

    def fail(
        self,
        job_id: int,
        owner: str,
        error: str,
        *,
        retry: bool = True,
        details: Mapping[str, Any] | None = None,
    ) -> JobView:
        """A failed attempt: queued again after a backoff while attempts remain, else ``failed``."""
        with self._store.write() as session:
            row = self._held(session, job_id, owner)
            row.error = error[:MAX_MESSAGE]
            row.lease_owner, row.lease_expires_at = None, None
            now = utcnow()
            if row.cancel_requested:
                row.state, row.finished_at = JobState.CANCELLED, now
                self._event(session, job_id, "warning", f"cancelled; last error: {error}", details)
            elif retry and row.attempts < row.max_attempts:
                delay = min(self.retry_max_s, self.retry_base_s * 2 ** (row.attempts - 1))
                row.state, row.run_after = JobState.QUEUED, now + timedelta(seconds=delay)
                message = (
                    f"attempt {row.attempts} of {row.max_attempts} failed: {error}; "
                    f"retrying in {delay:.0f}s"
                )
                self._event(session, job_id, "error", message, details)
            else:
                row.state, row.finished_at = JobState.FAILED, now
                why = "" if retry else " (not retryable)"
                self._event(session, job_id, "error", f"failed{why}: {error}", details)
            return JobView.of(row)

    def release(self, job_id: int, owner: str, reason: str) -> JobView:
        """Hand the job back unfinished (the worker stops): queued again, attempt not counted."""
        with self._store.write() as session:
            row = self._held(session, job_id, owner)
            row.lease_owner, row.lease_expires_at = None, None
            if row.cancel_requested:
                row.state, row.finished_at = JobState.CANCELLED, utcnow()
                self._event(session, job_id, "warning", f"cancelled ({reason})")
            else:
                row.state, row.run_after = JobState.QUEUED, utcnow()
                row.attempts = max(0, row.attempts - 1)
                self._event(session, job_id, "warning", f"released by {owner}: {reason}")
            return JobView.of(row)
