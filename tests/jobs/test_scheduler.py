"""``Scheduler``: recurring work becomes one job per slot, however many workers tick."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from modelcycle.errors import InvalidInput, NotFound
from modelcycle.jobs import JobContext, Jobs, JobState, Scheduler, Worker
from modelcycle.jobs.scheduler import slot_of
from modelcycle.services import Services, build_worker

HOUR = 3600
NOON = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_ensure_is_an_idempotent_upsert(scheduler: Scheduler, project_id: int) -> None:
    scheduler.ensure("nightly", "report", {"v": 1}, interval_s=HOUR, project_id=project_id)
    updated = scheduler.ensure("nightly", "report", {"v": 2}, interval_s=60, project_id=project_id)

    listed = scheduler.list(project_id=project_id)
    assert [s.name for s in listed] == ["nightly"]
    assert updated.payload == {"v": 2}
    assert updated.interval_s == 60
    with pytest.raises(InvalidInput):
        scheduler.ensure("bad", "report", {}, interval_s=0)


def test_a_due_schedule_enqueues_one_job_per_slot(scheduler: Scheduler, jobs: Jobs) -> None:
    scheduler.ensure("hourly", "report", {"what": "x"}, interval_s=HOUR)

    first = scheduler.tick(NOON)
    again = scheduler.tick(NOON + timedelta(minutes=30))  # same slot: not due yet

    assert len(first) == 1
    assert again == []
    job = jobs.get(first[0])
    assert job.kind == "report"
    assert job.payload == {"what": "x"}
    assert job.created_by == "schedule:hourly"
    assert job.dedupe_key == f"schedule:{scheduler.get('hourly').id}:{slot_of(NOON, HOUR)}"
    assert scheduler.get("hourly").next_run_at == NOON + timedelta(hours=1)


def test_a_slot_is_skipped_while_the_previous_run_still_waits(
    scheduler: Scheduler, jobs: Jobs
) -> None:
    scheduler.ensure("hourly", "report", {}, interval_s=HOUR)
    (first,) = scheduler.tick(NOON)

    skipped = scheduler.tick(NOON + timedelta(hours=1))
    jobs.claim("w1", ["report"], lease_s=60)
    jobs.finish(first, "w1", None)
    after = scheduler.tick(NOON + timedelta(hours=2))

    assert skipped == []
    assert len(after) == 1
    assert after[0] != first


def test_a_worker_back_after_a_long_outage_enqueues_one_run_not_a_backlog(
    scheduler: Scheduler, jobs: Jobs
) -> None:
    scheduler.ensure("minutely", "report", {}, interval_s=60)
    (first,) = scheduler.tick(NOON)
    jobs.claim("w1", ["report"], lease_s=60)
    jobs.finish(first, "w1", None)

    later = scheduler.tick(NOON + timedelta(days=1, seconds=30))

    assert len(later) == 1
    assert scheduler.get("minutely").next_run_at == NOON + timedelta(days=1, minutes=1)
    assert len(jobs.list(project_id=None).items) == 2


def test_racing_schedulers_enqueue_each_slot_once(
    modelcycle_services: Services, scheduler: Scheduler, jobs: Jobs
) -> None:
    names = [f"s{i}" for i in range(5)]
    for name in names:
        scheduler.ensure(name, "report", {}, interval_s=HOUR)
    enqueued: list[int] = []
    lock = threading.Lock()
    go = threading.Barrier(4)

    def tick() -> None:
        mine = Scheduler(modelcycle_services.store, jobs)
        go.wait()
        found = mine.tick(NOON)
        with lock:
            enqueued.extend(found)

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(enqueued) == len(names)
    assert len(jobs.list(project_id=None).items) == len(names)


def test_remove_stops_a_schedule(scheduler: Scheduler) -> None:
    scheduler.ensure("gone", "report", {}, interval_s=HOUR)
    removed = scheduler.remove("gone")

    assert removed.name == "gone"
    assert scheduler.tick(NOON) == []
    with pytest.raises(NotFound):
        scheduler.remove("gone")


def test_a_worker_with_a_scheduler_runs_what_falls_due(scheduler: Scheduler, jobs: Jobs) -> None:
    ran: list[int] = []

    def report(context: JobContext) -> dict[str, int]:
        ran.append(context.job.id)
        return {"rows": 3}

    scheduler.ensure("hourly", "report", {}, interval_s=HOUR)
    worker = Worker(jobs, {"report": report}, scheduler=scheduler)

    assert worker.run_once() is True
    assert worker.run_once() is False
    assert jobs.get(ran[0]).result == {"rows": 3}


def test_the_platform_schedules_run_on_the_built_in_worker(modelcycle_services: Services) -> None:
    worker = build_worker(modelcycle_services)
    while worker.run_once():
        pass

    platform = modelcycle_services.jobs.list(project_id=None).items
    by_kind = {job.kind: job for job in platform}
    assert set(by_kind) == {"monitor.retention", "alerts.evaluate", "jobs.purge", "eval.online"}
    assert {job.state for job in platform} == {JobState.SUCCEEDED}
    assert by_kind["alerts.evaluate"].result == {"transitions": 0}
    assert by_kind["monitor.retention"].result == {"spans_deleted": 0}
    assert by_kind["eval.online"].result == {
        "configs": 0,
        "spans_read": 0,
        "traces_scored": 0,
        "scores": 0,
        "score_errors": 0,
    }
    every = {s.kind: s.interval_s for s in modelcycle_services.scheduler.list(project_id=None)}
    assert every["alerts.evaluate"] == round(modelcycle_services.settings.alert_interval_s)
    assert every["monitor.retention"] == 86_400
    assert every["eval.online"] == round(modelcycle_services.settings.online_eval_interval_s)
