"""Public shapes of jobs, their events and schedules."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from modelcycle.store.tables import JobEventRow, JobRow, ScheduleRow


class JobState(enum.StrEnum):
    """Where a job is in its life.

    ``validating_files`` -> ``queued`` -> ``running`` -> ``succeeded`` | ``failed``
    | ``cancelled``; a failed attempt with retries left goes back to ``queued``.
    """

    VALIDATING_FILES = "validating_files"
    """Created, its inputs being checked; not claimable yet."""
    QUEUED = "queued"
    """Waiting for a worker (from ``run_after`` on)."""
    RUNNING = "running"
    """Held by a worker whose lease is renewed while it runs."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the job will never run again."""
        return self in _FINISHED


_FINISHED = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
FINISHED_STATES = tuple(sorted(_FINISHED))
"""The terminal states, as stored."""


class JobView(BaseModel):
    """A job as its readers see it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int | None
    """``None`` for the platform's own jobs (retention, alert evaluation)."""
    kind: str
    state: JobState
    payload: dict[str, Any]
    priority: int
    attempts: int
    """Times a worker has started it (a job resumed after its worker died counts again)."""
    max_attempts: int
    progress: float | None
    """Fraction done in [0, 1], as the handler last reported it."""
    result: dict[str, Any] | None
    checkpoint: dict[str, Any] | None
    """What the handler saved to resume from."""
    error: str | None
    """The last error (kept after a retry succeeds for the record)."""
    cancel_requested: bool
    run_after: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    dedupe_key: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: JobRow) -> JobView:
        """The view of a stored row."""
        return cls.model_validate(row)


class JobEventView(BaseModel):
    """A log line or metric point of a job (``level="metric"`` carries ``data``)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    job_id: int
    at: datetime
    level: str
    message: str
    data: dict[str, Any] | None

    @classmethod
    def of(cls, row: JobEventRow) -> JobEventView:
        """The view of a stored row."""
        return cls.model_validate(row)


class ScheduleView(BaseModel):
    """Recurring work the scheduler enqueues every ``interval_s`` seconds."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    project_id: int | None
    kind: str
    payload: dict[str, Any]
    interval_s: int
    next_run_at: datetime
    last_job_id: int | None
    enabled: bool
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: ScheduleRow) -> ScheduleView:
        """The view of a stored row."""
        return cls.model_validate(row)
