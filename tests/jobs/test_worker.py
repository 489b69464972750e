"""``Worker``: runs handlers, records outcomes, retries, cancels, stops gracefully."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest

from modelcycle.errors import InvalidInput
from modelcycle.jobs import JobContext, JobInterrupted, Jobs, JobState, Worker

WAIT_S = 30.0
"""Upper bound for events the tests wait for; they normally come in milliseconds."""


def test_a_handler_runs_once_with_its_payload_and_its_result_is_stored(
    jobs: Jobs, project_id: int
) -> None:
    seen: list[Mapping[str, Any]] = []

    def handler(context: JobContext) -> dict[str, Any]:
        seen.append(context.payload)
        assert context.resume_from is None
        assert context.project_id == project_id
        for step in range(1, 4):
            context.progress(step / 4, loss=1.0 / step)
            context.checkpoint({"step": step})
        context.log("trained", data={"epochs": 1})
        return {"steps": 3}

    job = jobs.enqueue("train", {"lr": 0.1}, project_id=project_id, actor="x")
    worker = Worker(jobs, {"train": handler}, owner="w-test")

    assert worker.run_once() is True
    assert worker.run_once() is False

    done = jobs.get(job.id)
    assert seen == [{"lr": 0.1}]
    assert done.state == JobState.SUCCEEDED
    assert done.result == {"steps": 3}
    assert done.checkpoint == {"step": 3}
    losses = [e.data["loss"] for e in jobs.events(job.id) if e.level == "metric" and e.data]
    assert losses == [1.0, 0.5, pytest.approx(1 / 3)]


def test_a_raising_handler_is_retried_then_fails_with_its_error_and_traceback_kept(
    jobs: Jobs, project_id: int
) -> None:
    calls = []

    def flaky(context: JobContext) -> None:
        calls.append(context.job.attempts)
        raise RuntimeError(f"disk full on attempt {context.job.attempts}")

    job = jobs.enqueue("flaky", {}, project_id=project_id, actor="x", max_attempts=3)
    worker = Worker(jobs, {"flaky": flaky})
    while worker.run_once():
        pass

    failed = jobs.get(job.id)
    assert calls == [1, 2, 3]
    assert failed.state == JobState.FAILED
    assert failed.error == "RuntimeError: disk full on attempt 3"
    errors = [e for e in jobs.events(job.id) if e.level == "error"]
    assert len(errors) == 3
    assert errors[-1].data is not None
    assert "disk full" in errors[-1].data["traceback"]


def test_an_error_that_would_recur_fails_the_job_without_retrying(
    jobs: Jobs, project_id: int
) -> None:
    def bad_input(_context: JobContext) -> None:
        raise InvalidInput("dataset 'x' has no rows")

    job = jobs.enqueue("check", {}, project_id=project_id, actor="x", max_attempts=5)
    Worker(jobs, {"check": bad_input}).run_once()

    failed = jobs.get(job.id)
    assert failed.state == JobState.FAILED
    assert failed.attempts == 1
    assert failed.error == "InvalidInput: dataset 'x' has no rows"


def test_a_result_that_is_not_json_fails_the_job(jobs: Jobs, project_id: int) -> None:
    job = jobs.enqueue("odd", {}, project_id=project_id, actor="x")
    Worker(jobs, {"odd": lambda _c: {"when": object()}}).run_once()

    failed = jobs.get(job.id)
    assert failed.state == JobState.FAILED
    assert failed.error is not None
    assert "not JSON-serialisable" in failed.error


def test_a_running_job_is_cancelled_when_its_handler_sees_the_request(
    jobs: Jobs, project_id: int
) -> None:
    started, release = threading.Event(), threading.Event()

    def patient(context: JobContext) -> dict[str, Any]:
        started.set()
        steps = 0
        while not context.cancelled and steps < 10_000:
            release.wait(0.01)
            steps += 1
        return {"stopped_at": steps}

    job = jobs.enqueue("long", {}, project_id=project_id, actor="x")
    worker = Worker(jobs, {"long": patient}, lease_s=0.3)
    runner = threading.Thread(target=worker.run_once)
    runner.start()
    assert started.wait(WAIT_S)

    jobs.cancel(job.id, actor="key:boss")
    runner.join(WAIT_S)

    ended = jobs.get(job.id)
    assert not runner.is_alive()
    assert ended.state == JobState.CANCELLED
    assert ended.result is not None
    assert ended.result["stopped_at"] < 10_000


def test_a_job_that_finished_its_work_before_seeing_a_cancel_succeeds(
    jobs: Jobs, project_id: int
) -> None:
    started, cancelled = threading.Event(), threading.Event()

    def finishing(context: JobContext) -> dict[str, Any]:
        started.set()
        cancelled.wait(WAIT_S)  # the cancel arrives after the work is done
        return {"status": "succeeded", "registered": "toy@2"}

    job = jobs.enqueue("tune", {}, project_id=project_id, actor="x")
    worker = Worker(jobs, {"tune": finishing}, lease_s=0.3)
    runner = threading.Thread(target=worker.run_once)
    runner.start()
    assert started.wait(WAIT_S)
    jobs.cancel(job.id, actor="key:boss")
    cancelled.set()
    runner.join(WAIT_S)

    ended = jobs.get(job.id)
    # What it left behind (a registered version) and its state agree.
    assert ended.state == JobState.SUCCEEDED
    assert ended.result == {"status": "succeeded", "registered": "toy@2"}
    messages = [event.message for event in jobs.events(job.id)]
    assert "finished before the cancel took effect" in messages


def test_a_stopping_worker_hands_an_unfinished_job_back_for_another_to_resume(
    jobs: Jobs, project_id: int
) -> None:
    checkpointed, release = threading.Event(), threading.Event()
    resumed_from: list[Any] = []

    def resumable(context: JobContext) -> dict[str, Any]:
        resumed_from.append(context.resume_from)
        if context.resume_from is None:
            context.checkpoint({"step": 5})
            checkpointed.set()
            release.wait(WAIT_S)  # a long step, still going when the worker stops
            return {"finished_by": "first"}
        return {"finished_by": "second", "from_step": context.resume_from["step"]}

    job = jobs.enqueue("long", {}, project_id=project_id, actor="x", max_attempts=1)
    first = Worker(jobs, {"long": resumable}, owner="first", grace_s=0.05)
    stop = threading.Event()
    runner = threading.Thread(target=first.run, args=(stop,))
    runner.start()
    assert checkpointed.wait(WAIT_S)
    stop.set()
    runner.join(WAIT_S)
    handed_back = jobs.get(job.id)
    release.set()  # the first handler now returns; its outcome must not count

    second = Worker(jobs, {"long": resumable}, owner="second")
    assert second.run_once() is True

    done = jobs.get(job.id)
    assert not runner.is_alive()
    assert handed_back.state == JobState.QUEUED
    assert handed_back.attempts == 0
    assert done.state == JobState.SUCCEEDED
    assert done.result == {"finished_by": "second", "from_step": 5}
    assert resumed_from == [None, {"step": 5}]


def test_a_handler_raising_interrupted_is_handed_back(jobs: Jobs, project_id: int) -> None:
    def polite(context: JobContext) -> None:
        context.checkpoint({"step": 1})
        raise JobInterrupted

    job = jobs.enqueue("long", {}, project_id=project_id, actor="x", max_attempts=1)
    Worker(jobs, {"long": polite}).run_once()

    back = jobs.get(job.id)
    assert back.state == JobState.QUEUED
    assert back.attempts == 0
    assert back.checkpoint == {"step": 1}
