"""``Worker``: claims jobs of the kinds it has handlers for and runs them one at a time.

The handler runs on a thread of its own while this one renews the lease every
third of ``lease_s``, so a handler that never reports still keeps its job; a
worker that dies stops renewing, and after ``lease_s`` another worker takes the
job and resumes it from its last checkpoint. On ``stop`` the worker lets the
handler finish for ``grace_s`` seconds, then hands the job back unfinished.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError

from modelcycle.errors import (
    Conflict,
    InvalidInput,
    MissingExtra,
    NotFound,
    PermissionDenied,
    StoreError,
)
from modelcycle.jobs.context import Handler, JobContext, JobInterrupted
from modelcycle.jobs.leases import LeaseLost
from modelcycle.jobs.queue import MAX_OWNER, Jobs
from modelcycle.jobs.scheduler import Scheduler
from modelcycle.jobs.schemas import JobView

log = logging.getLogger(__name__)

STOP_CHECK_S = 0.1
"""How often a worker running a job looks whether it was told to stop."""

PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    InvalidInput,
    NotFound,
    PermissionDenied,
    Conflict,
    MissingExtra,
)
"""Errors that another attempt would meet again: the job fails at once."""


def default_owner() -> str:
    """A worker name unique across hosts and processes: ``host:pid:random``."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"[:MAX_OWNER]


class _Attempt:
    """One handler run on its own thread, and what it ended with."""

    def __init__(self, handler: Handler, context: JobContext):
        self.context = context
        self.result: Mapping[str, Any] | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._handler = handler

    def start(self) -> None:
        thread = threading.Thread(
            target=self._run, name=f"modelcycle-job-{self.context.job.id}", daemon=True
        )
        thread.start()

    def _run(self) -> None:
        try:
            self.result = self._handler(self.context)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()


class Worker:
    """Runs jobs from ``jobs`` with ``handlers`` (kind -> handler), one at a time."""

    def __init__(
        self,
        jobs: Jobs,
        handlers: Mapping[str, Handler],
        *,
        owner: str | None = None,
        lease_s: float = 60.0,
        poll_s: float = 1.0,
        scheduler: Scheduler | None = None,
        grace_s: float = 30.0,
    ):
        self.jobs = jobs
        self.handlers = dict(handlers)
        self.owner = owner or default_owner()
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.scheduler = scheduler
        self.grace_s = grace_s
        """How long a stopping worker waits for the running handler before handing its job back."""
        self._stopping = threading.Event()

    def run_once(self) -> bool:
        """Enqueue due schedules, then claim and run at most one job; ``True`` when one ran."""
        return self._step(self._stopping)

    def run(self, stop: threading.Event) -> None:
        """Run jobs until ``stop`` is set (then finish or hand back the current one)."""
        log.info("worker %s started; kinds: %s", self.owner, ", ".join(sorted(self.handlers)))
        while not stop.is_set():
            try:
                ran = self._step(stop)
            except (StoreError, SQLAlchemyError) as exc:
                # The database is away: keep trying, quietly, instead of dying.
                log.warning("worker %s: database unavailable: %s", self.owner, exc)
                ran = False
                stop.wait(self.poll_s * 5)
            if not ran:
                stop.wait(self.poll_s)
        log.info("worker %s stopped", self.owner)

    def _step(self, stop: threading.Event) -> bool:
        if self.scheduler is not None:
            self.scheduler.tick()
        job = self.jobs.claim(self.owner, list(self.handlers), self.lease_s)
        if job is None:
            return False
        self._execute(job, stop)
        return True

    def _execute(self, job: JobView, stop: threading.Event) -> None:
        context = JobContext(self.jobs, job, owner=self.owner, lease_s=self.lease_s, stopping=stop)
        attempt = _Attempt(self.handlers[job.kind], context)
        attempt.start()
        renew_every = max(0.05, self.lease_s / 3)
        next_renewal = time.monotonic() + renew_every
        # Wake often enough to notice ``stop`` promptly; renew only when due.
        while not attempt.done.wait(min(STOP_CHECK_S, renew_every)):
            if stop.is_set():
                if not attempt.done.wait(self.grace_s):
                    self._settle(
                        job, lambda: self.jobs.release(job.id, self.owner, "worker stopped")
                    )
                    return
                break
            if time.monotonic() >= next_renewal:
                self._renew(context)
                next_renewal = time.monotonic() + renew_every
        self._conclude(job, attempt)

    def _renew(self, context: JobContext) -> None:
        try:
            context.observe(self.jobs.renew(context.job.id, self.owner, self.lease_s))
        except LeaseLost:
            # The handler learns it on its next report; its outcome will not be recorded.
            log.warning("worker %s lost the lease of job %s", self.owner, context.job.id)
        except (StoreError, SQLAlchemyError) as exc:
            log.warning("worker %s could not renew job %s: %s", self.owner, context.job.id, exc)

    def _conclude(self, job: JobView, attempt: _Attempt) -> None:
        error = attempt.error
        if error is None:
            result = attempt.result
            problem = _unstorable(result)
            if problem is None:
                self._settle(job, lambda: self.jobs.finish(job.id, self.owner, result))
                return
            error = InvalidInput(problem)
        if isinstance(error, JobInterrupted):
            self._settle(job, lambda: self.jobs.release(job.id, self.owner, "handler interrupted"))
            return
        if isinstance(error, LeaseLost):
            log.warning("job %s: %s", job.id, error)
            return
        message = f"{type(error).__name__}: {error}"
        details = {"traceback": "".join(traceback.format_exception(error))[-8000:]}
        retry = not isinstance(error, PERMANENT_ERRORS)
        log.warning("job %s (%s) failed: %s", job.id, job.kind, message)
        self._settle(
            job, lambda: self.jobs.fail(job.id, self.owner, message, retry=retry, details=details)
        )

    def _settle(self, job: JobView, action: Any) -> None:
        try:
            action()
        except LeaseLost as exc:
            log.warning("job %s: %s", job.id, exc)
        except (StoreError, SQLAlchemyError) as exc:
            # The lease runs out and another attempt resumes from the checkpoint.
            log.error("job %s: could not record its outcome: %s", job.id, exc)


def _unstorable(result: object) -> str | None:
    if result is None:
        return None
    if not isinstance(result, Mapping):
        return f"a handler must return a mapping or None, not {type(result).__name__}"
    try:
        orjson.dumps(result)
    except TypeError as exc:
        return f"the handler's result is not JSON-serialisable: {exc}"
    return None
