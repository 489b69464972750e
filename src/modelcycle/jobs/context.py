"""``JobContext``: what a handler gets to report on, and learn about, the job it runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from modelcycle.jobs.schemas import JobView

if TYPE_CHECKING:
    from modelcycle.jobs.queue import Jobs


class JobInterrupted(Exception):
    """Raise from a handler to hand the job back unfinished (the worker is stopping).

    Save a checkpoint first: the next worker's handler resumes from it, and the
    attempt does not count against ``max_attempts``.
    """


class JobContext:
    """The running job as its handler sees it; every call renews the worker's lease.

    Handlers poll ``cancelled`` (and ``stopping``) between steps and return early
    when it is set; what they return then is kept, and the job ends ``cancelled``.
    """

    def __init__(
        self,
        jobs: Jobs,
        job: JobView,
        *,
        owner: str,
        lease_s: float,
        stopping: threading.Event | None = None,
        poll_interval_s: float = 1.0,
    ):
        self._jobs = jobs
        self.job = job
        """The job as it was claimed."""
        self.owner = owner
        """The worker holding the lease."""
        self._lease_s = lease_s
        self._stopping = stopping or threading.Event()
        self._poll_interval_s = poll_interval_s
        self._cancel_seen = job.cancel_requested
        self._polled_at = time.monotonic()

    @property
    def payload(self) -> Mapping[str, Any]:
        """The job's input, as enqueued."""
        return self.job.payload

    @property
    def project_id(self) -> int | None:
        """The project the job works for (``None``: the platform's own job)."""
        return self.job.project_id

    @property
    def resume_from(self) -> Mapping[str, Any] | None:
        """The last checkpoint saved by an earlier attempt, or ``None`` on a fresh start."""
        return self.job.checkpoint

    def log(
        self, message: str, *, level: str = "info", data: Mapping[str, Any] | None = None
    ) -> None:
        """Append a line to the job's events (``level``: debug, info, warning, error, metric)."""
        self._jobs.log(self.job.id, message, level=level, data=data)

    def progress(self, fraction: float, **metrics: float) -> None:
        """Report the fraction done and, optionally, metrics (a point in the job's events)."""
        self.observe(
            self._jobs.report_progress(self.job.id, self.owner, fraction, metrics, self._lease_s)
        )

    def checkpoint(self, state: Mapping[str, Any]) -> None:
        """Save what a later attempt needs to resume (JSON-serialisable)."""
        self.observe(self._jobs.save_checkpoint(self.job.id, self.owner, state, self._lease_s))

    @property
    def cancelled(self) -> bool:
        """Whether someone asked to cancel the job (checked at most once a ``poll_interval_s``)."""
        if not self._cancel_seen and time.monotonic() - self._polled_at >= self._poll_interval_s:
            self.observe(self._jobs.renew(self.job.id, self.owner, self._lease_s))
        return self._cancel_seen

    @property
    def stopping(self) -> bool:
        """Whether the worker is shutting down (checkpoint, then raise ``JobInterrupted``)."""
        return self._stopping.is_set()

    def observe(self, cancel_requested: bool) -> None:
        """Record what a lease renewal learnt (the worker's heartbeat calls it too)."""
        self._polled_at = time.monotonic()
        self._cancel_seen = self._cancel_seen or cancel_requested


Handler: TypeAlias = Callable[[JobContext], Mapping[str, Any] | None]
"""Runs one job of a kind and returns its result (stored on the job)."""
