"""Interrupted runs resume where they stopped: no pair answered twice, none stored twice.

Three interruptions: the process dies mid-run (the task is cancelled, as a
killed worker's would be), the worker stops (the job is handed back and the
next attempt resumes from its checkpoint), and a person cancels the run. A
plugin counts the gateway's requests and interrupts after N of them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from modelcycle import events
from modelcycle.access import Principal
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.errors import Conflict
from modelcycle.evaluate.samples import SampleIn, write_version
from modelcycle.evaluate.schemas import EvalRun, EvalRunCreate, ScorerSpec
from modelcycle.hookspecs import hookimpl
from modelcycle.jobs import JobContext, JobInterrupted, JobState
from modelcycle.services import Services, build_worker
from modelcycle.settings import Settings
from modelcycle.store.tables import EvalResultRow, LineageEdgeRow
from modelcycle.testing import make_key, make_services, register
from modelcycle.types import Role

SAMPLES = 60
TARGETS = ("echo-dep", "paris@1")
TOTAL = SAMPLES * len(TARGETS)


class Requests:
    """Counts finished gateway requests and calls ``then(count)`` after each."""

    def __init__(self) -> None:
        self.count = 0
        self.then: Callable[[int], None] | None = None

    @hookimpl
    def modelcycle_request_finished(self, event: events.RequestFinished) -> None:
        self.count += 1
        if self.then is not None:
            self.then(self.count)


@dataclass
class Env:
    services: Services
    maintainer: Principal
    requests: Requests


@pytest.fixture
def env(modelcycle_settings: Settings) -> Iterator[Env]:
    requests = Requests()
    services = make_services(modelcycle_settings, plugins=(requests,))
    services.evals.result_batch = 20  # several batches before the kill at answer 70
    admin = make_key(services, Role.ADMIN).principal
    # A few milliseconds per answer, so a run is still going when it is interrupted.
    register(services, admin, "echo", source="mock://echo", params={"latency_ms": 3})
    register(services, admin, "paris", source="mock://script?reply=Paris", params={"latency_ms": 3})
    services.deployments.create(
        admin, DeploymentSpec(name="echo-dep", routes=[Route(target="echo@1", weight=100)])
    )
    with services.store.write() as session:
        write_version(
            session,
            admin.project_id,
            "cities",
            [SampleIn({"prompt": f"city {i}"}, "Paris") for i in range(SAMPLES)],
            source="import",
            actor="test",
        )
    yield Env(services, make_key(services, Role.MAINTAINER).principal, requests)
    asyncio.run(services.gateway.aclose())
    services.close()


def start(env: Env, **overrides: object) -> EvalRun:
    values: dict[str, object] = {
        "dataset": "cities",
        "targets": list(TARGETS),
        "scorers": [ScorerSpec(name="exact_match")],
        "gates": ["delta(exact_match)>=0"],
        "concurrency": 4,
    }
    values.update(overrides)
    return env.services.evals.create(env.maintainer, EvalRunCreate(**values))  # type: ignore[arg-type]


def stored_pairs(services: Services, run_id: int) -> list[tuple[int, str]]:
    with services.store.read() as session:
        rows = session.execute(
            select(EvalResultRow.sample_id, EvalResultRow.target).where(
                EvalResultRow.run_id == run_id
            )
        ).all()
    return [(sample_id, target) for sample_id, target in rows]


def assert_complete(services: Services, run_id: int) -> None:
    pairs = stored_pairs(services, run_id)
    assert len(pairs) == TOTAL
    assert len(set(pairs)) == TOTAL  # nothing stored twice


def test_a_run_killed_mid_way_resumes_without_repeating_a_pair(env: Env) -> None:
    services = env.services
    created = start(env)

    async def killed() -> None:
        task = asyncio.create_task(services.evals.execute(created.id))
        env.requests.then = lambda count: task.cancel() if count == 70 else None
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(killed())
    env.requests.then = None
    kept = len(stored_pairs(services, created.id))
    assert 0 < kept < TOTAL  # some batches were written, the rest died with the process
    assert services.evals.get(env.maintainer, created.id).status == "running"

    before = env.requests.count
    summary = asyncio.run(services.evals.execute(created.id))

    assert env.requests.count - before == TOTAL - kept  # only the missing pairs were asked
    assert_complete(services, created.id)
    assert [t.samples for t in summary.targets] == [SAMPLES, SAMPLES]
    finished = services.evals.get(env.maintainer, created.id)
    assert (finished.status, finished.progress, finished.gates_passed) == ("succeeded", 1.0, True)


def test_a_stopping_worker_hands_the_run_back_and_the_next_attempt_finishes_it(env: Env) -> None:
    services = env.services
    created = start(env)
    assert created.job_id is not None
    job = services.jobs.claim("first-worker", ["eval.run"], 60.0)
    assert job is not None
    assert job.id == created.job_id
    stopping = threading.Event()
    context = JobContext(services.jobs, job, owner="first-worker", lease_s=60.0, stopping=stopping)
    env.requests.then = lambda count: stopping.set() if count == 50 else None

    with pytest.raises(JobInterrupted, match="resumes"):
        asyncio.run(services.evals.execute(created.id, context=context))
    env.requests.then = None
    kept = len(stored_pairs(services, created.id))
    assert 50 <= kept < TOTAL  # what was answered before stopping was stored, not thrown away
    assert services.evals.get(env.maintainer, created.id).status == "queued"
    services.jobs.release(job.id, "first-worker", "worker stopped")

    before = env.requests.count
    assert build_worker(services, run_schedules=False).run_once()

    assert env.requests.count - before == TOTAL - kept
    assert_complete(services, created.id)
    done = services.jobs.get(created.job_id)
    assert done.state == JobState.SUCCEEDED
    assert done.checkpoint is not None
    assert done.checkpoint["stored"] == TOTAL
    assert services.evals.get(env.maintainer, created.id).status == "succeeded"


def test_two_attempts_racing_store_each_pair_once(env: Env) -> None:
    services = env.services
    created = start(env, targets=["echo-dep", "paris@1"])

    async def both() -> None:
        await asyncio.gather(services.evals.execute(created.id), services.evals.execute(created.id))

    asyncio.run(both())
    assert_complete(services, created.id)
    with services.store.read() as session:
        edges = session.execute(
            select(func.count())
            .select_from(LineageEdgeRow)
            .where(LineageEdgeRow.target_ref == str(created.id))
        ).scalar()
    assert edges == 1  # paris@1 linked to the run once, however many attempts finished


def test_cancelling_a_running_run_stops_it_and_keeps_a_partial_summary(env: Env) -> None:
    services = env.services
    created = start(env, concurrency=1)
    env.requests.then = lambda count: (
        services.evals.cancel(env.maintainer, created.id) if count == 30 else None
    )

    summary = asyncio.run(services.evals.execute(created.id))

    env.requests.then = None
    kept = len(stored_pairs(services, created.id))
    assert kept < TOTAL
    assert env.requests.count < TOTAL  # it stopped asking
    run = services.evals.get(env.maintainer, created.id)
    assert (run.status, run.gates_passed) == ("cancelled", None)
    assert run.summary is not None
    assert run.summary.gates == []
    assert sum(t.samples for t in summary.targets) == kept
    with pytest.raises(Conflict):
        asyncio.run(services.evals.execute(created.id))
