"""``client.tune``: start tuning jobs, follow their events, wait for the tuned version.

A job trains on the server's worker; ``create`` returns at once with the job
queued (its data already checked), ``events`` pages through its log lines and
metric points, and ``wait`` polls until it has succeeded, failed or been cancelled.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from modelcycle.client.calls import API, Call, PageCall
from modelcycle.jobs import JobEventView
from modelcycle.tune.schemas import TuneCheckpoint, TuneJob, TuneJobCreate, TuneMethod

if TYPE_CHECKING:
    from modelcycle.client.asyncio import AsyncClient
    from modelcycle.client.sync import Client

TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
"""The states a job never leaves."""
ProgressCallback = Callable[[TuneJob], object]

_EVENTS = TypeAdapter(list[JobEventView])
_CHECKPOINTS = TypeAdapter(list[TuneCheckpoint])


def _job_path(job_id: str) -> str:
    return f"{API}/tune/jobs/{job_id}"


def create_body(
    base: str,
    method: TuneMethod,
    dataset: str | None,
    training_file: str | None,
    hyperparameters: Mapping[str, Any] | None,
    fields: Mapping[str, Any],
) -> TuneJobCreate:
    """The request, validated here so that a typo fails before any request is sent."""
    values = {key: value for key, value in fields.items() if value is not None}
    return TuneJobCreate.model_validate(
        {
            **values,
            "base": base,
            "method": method,
            "dataset": dataset,
            "training_file": training_file,
            "hyperparameters": dict(hyperparameters or {}),
        }
    )


def create_call(body: TuneJobCreate) -> Call[TuneJob]:
    """``POST /api/v1/tune/jobs``."""
    json = body.model_dump(mode="json", exclude_none=True)
    return Call("POST", f"{API}/tune/jobs", TuneJob.model_validate, json=json)


def list_call(limit: int) -> PageCall[TuneJob]:
    """``GET /api/v1/tune/jobs`` (every page)."""
    return PageCall(f"{API}/tune/jobs", TuneJob.model_validate, params={"limit": limit})


def get_call(job_id: str) -> Call[TuneJob]:
    """``GET /api/v1/tune/jobs/{id}``."""
    return Call("GET", _job_path(job_id), TuneJob.model_validate)


def cancel_call(job_id: str) -> Call[TuneJob]:
    """``POST /api/v1/tune/jobs/{id}/cancel``."""
    return Call("POST", f"{_job_path(job_id)}/cancel", TuneJob.model_validate)


def events_call(job_id: str, after_id: int, limit: int) -> Call[list[JobEventView]]:
    """``GET /api/v1/tune/jobs/{id}/events`` after the event ``after_id``."""
    from modelcycle.store import encode_cursor

    params: dict[str, Any] = {"limit": limit}
    if after_id:
        params["cursor"] = encode_cursor(after_id)
    return Call(
        "GET",
        f"{_job_path(job_id)}/events",
        lambda body: _EVENTS.validate_python(body["data"]),
        params=params,
    )


def checkpoints_call(job_id: str) -> Call[list[TuneCheckpoint]]:
    """``GET /api/v1/tune/jobs/{id}/checkpoints``."""
    return Call("GET", f"{_job_path(job_id)}/checkpoints", _CHECKPOINTS.validate_python)


class Tune:
    """Tuning jobs of the project (maintainers create and cancel, viewers read)."""

    def __init__(self, client: Client):
        self._c = client

    def create(
        self,
        base: str,
        *,
        dataset: str | None = None,
        training_file: str | None = None,
        method: TuneMethod = "sft-lora",
        hyperparameters: Mapping[str, Any] | None = None,
        validation_dataset: str | None = None,
        validation_file: str | None = None,
        eval_datasets: Sequence[str] | None = None,
        suffix: str | None = None,
    ) -> TuneJob:
        """Start a job on ``base`` (NAME@VERSION or NAME@alias) with a dataset or a file.

        ``hyperparameters``: epochs, learning_rate, lora_r... (see ``Hyperparameters``);
        ``eval_datasets``: compare the tuned version with its parent on these afterwards.
        A bad sample raises ``InvalidInput`` naming it; nothing is queued then.
        """
        fields = {
            "validation_dataset": validation_dataset,
            "validation_file": validation_file,
            "eval_datasets": list(eval_datasets) if eval_datasets else None,
            "suffix": suffix,
        }
        body = create_body(base, method, dataset, training_file, hyperparameters, fields)
        return self._c.run(create_call(body))

    def list(self, *, limit: int = 20) -> builtins.list[TuneJob]:
        """Every job of the project, newest first."""
        return self._c.collect(list_call(limit))

    def get(self, job_id: str) -> TuneJob:
        """One job."""
        return self._c.run(get_call(job_id))

    def cancel(self, job_id: str) -> TuneJob:
        """Cancel a job: a queued one at once, a running one at its next step."""
        return self._c.run(cancel_call(job_id))

    def events(
        self, job_id: str, *, after_id: int = 0, limit: int = 100
    ) -> builtins.list[JobEventView]:
        """Log lines and metric points after the event ``after_id``, oldest first."""
        return self._c.run(events_call(job_id, after_id, limit))

    def checkpoints(self, job_id: str) -> builtins.list[TuneCheckpoint]:
        """The checkpoints the job saved, newest first."""
        return self._c.run(checkpoints_call(job_id))

    def wait(
        self,
        job_id: str,
        *,
        timeout_s: float = 3600.0,
        poll_s: float = 2.0,
        on_progress: ProgressCallback | None = None,
    ) -> TuneJob:
        """Poll until the job has finished; ``TimeoutError`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.status in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"tuning job {job_id} is still {job.status} after {timeout_s}s")
            time.sleep(poll_s)


class AsyncTune:
    """Tuning jobs of the project (maintainers create and cancel, viewers read)."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def create(
        self,
        base: str,
        *,
        dataset: str | None = None,
        training_file: str | None = None,
        method: TuneMethod = "sft-lora",
        hyperparameters: Mapping[str, Any] | None = None,
        validation_dataset: str | None = None,
        validation_file: str | None = None,
        eval_datasets: Sequence[str] | None = None,
        suffix: str | None = None,
    ) -> TuneJob:
        """Start a job on ``base`` (see ``Tune.create``)."""
        fields = {
            "validation_dataset": validation_dataset,
            "validation_file": validation_file,
            "eval_datasets": list(eval_datasets) if eval_datasets else None,
            "suffix": suffix,
        }
        body = create_body(base, method, dataset, training_file, hyperparameters, fields)
        return await self._c.run(create_call(body))

    async def list(self, *, limit: int = 20) -> builtins.list[TuneJob]:
        """Every job of the project, newest first."""
        return await self._c.collect(list_call(limit))

    async def get(self, job_id: str) -> TuneJob:
        """One job."""
        return await self._c.run(get_call(job_id))

    async def cancel(self, job_id: str) -> TuneJob:
        """Cancel a job: a queued one at once, a running one at its next step."""
        return await self._c.run(cancel_call(job_id))

    async def events(
        self, job_id: str, *, after_id: int = 0, limit: int = 100
    ) -> builtins.list[JobEventView]:
        """Log lines and metric points after the event ``after_id``, oldest first."""
        return await self._c.run(events_call(job_id, after_id, limit))

    async def checkpoints(self, job_id: str) -> builtins.list[TuneCheckpoint]:
        """The checkpoints the job saved, newest first."""
        return await self._c.run(checkpoints_call(job_id))

    async def wait(
        self,
        job_id: str,
        *,
        timeout_s: float = 3600.0,
        poll_s: float = 2.0,
        on_progress: ProgressCallback | None = None,
    ) -> TuneJob:
        """Poll until the job has finished; ``TimeoutError`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = await self.get(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.status in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"tuning job {job_id} is still {job.status} after {timeout_s}s")
            await asyncio.sleep(poll_s)
