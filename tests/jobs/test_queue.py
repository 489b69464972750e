"""The job queue: enqueue, read, claim, lease, finish, fail, cancel, purge (both databases)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from jobs.conftest import expire_lease
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.jobs import Jobs, JobState, LeaseLost
from modelcycle.services import Services
from modelcycle.store.tables import AuditEntryRow, JobEventRow, JobRow, utcnow


def test_enqueued_jobs_are_listed_newest_first_page_by_page(jobs: Jobs, project_id: int) -> None:
    ids = [
        jobs.enqueue("a.kind", {"n": n}, project_id=project_id, actor="key:me").id for n in range(5)
    ]
    jobs.enqueue("b.kind", {}, project_id=project_id, actor="key:me")
    jobs.enqueue("a.kind", {}, project_id=None, actor="system")

    first = jobs.list(project_id=project_id, kind="a.kind", limit=3)
    second = jobs.list(project_id=project_id, kind="a.kind", limit=3, cursor=first.next_cursor)

    assert [j.id for j in first.items] == ids[::-1][:3]
    assert [j.id for j in second.items] == ids[::-1][3:]
    assert second.next_cursor is None
    assert first.items[0].state == JobState.QUEUED
    assert first.items[0].payload == {"n": 4}
    assert first.items[0].created_by == "key:me"
    platform = jobs.list(project_id=None).items
    assert [j.project_id for j in platform] == [None]
    everything = jobs.list(project_id=project_id, include_platform=True, limit=50).items
    assert len(everything) == 7
    assert jobs.list(project_id=project_id, state="running").items == []


def test_a_dedupe_key_enqueues_once(jobs: Jobs, project_id: int) -> None:
    first = jobs.enqueue("a.kind", {"v": 1}, project_id=project_id, actor="x", dedupe_key="k-1")
    again = jobs.enqueue("a.kind", {"v": 2}, project_id=project_id, actor="x", dedupe_key="k-1")

    assert again.id == first.id
    assert again.payload == {"v": 1}
    assert len(jobs.list(project_id=project_id).items) == 1


@pytest.mark.parametrize(
    ("kind", "options", "param"),
    [
        ("", {}, "kind"),
        ("k" * 65, {}, "kind"),
        ("ok", {"max_attempts": 0}, "max_attempts"),
        ("ok", {"state": "running"}, "state"),
        ("ok", {"dedupe_key": "d" * 129}, "dedupe_key"),
    ],
)
def test_bad_jobs_are_refused_before_anything_is_stored(
    jobs: Jobs, project_id: int, kind: str, options: dict[str, object], param: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        jobs.enqueue(kind, {}, project_id=project_id, actor="x", **options)  # type: ignore[arg-type]
    assert caught.value.param == param
    assert jobs.list(project_id=project_id).items == []


def test_claim_takes_the_highest_priority_then_the_oldest_of_the_wanted_kinds(
    jobs: Jobs, project_id: int
) -> None:
    low = jobs.enqueue("work", {}, project_id=project_id, actor="x")
    high = jobs.enqueue("work", {}, project_id=project_id, actor="x", priority=5)
    jobs.enqueue("other", {}, project_id=project_id, actor="x", priority=9)

    first = jobs.claim("w1", ["work"], lease_s=60)
    second = jobs.claim("w1", ["work"], lease_s=60)

    assert first is not None
    assert second is not None
    assert (first.id, second.id) == (high.id, low.id)
    assert first.state == JobState.RUNNING
    assert first.attempts == 1
    assert first.lease_owner == "w1"
    assert first.lease_expires_at is not None
    assert first.lease_expires_at > utcnow()
    assert jobs.claim("w1", ["work"], lease_s=60) is None


def test_a_job_waits_for_its_run_after(jobs: Jobs, project_id: int) -> None:
    later = utcnow() + timedelta(hours=1)
    jobs.enqueue("work", {}, project_id=project_id, actor="x", run_after=later)

    assert jobs.claim("w1", ["work"], lease_s=60) is None


def test_validating_files_jobs_are_claimed_only_once_validated(jobs: Jobs, project_id: int) -> None:
    job = jobs.enqueue("tune", {}, project_id=project_id, actor="x", state="validating_files")
    bad = jobs.enqueue("tune", {}, project_id=project_id, actor="x", state="validating_files")
    assert jobs.claim("w1", ["tune"], lease_s=60) is None

    jobs.mark_validated(job.id)
    rejected = jobs.mark_invalid(bad.id, "line 3: missing 'messages'")

    claimed = jobs.claim("w1", ["tune"], lease_s=60)
    assert claimed is not None
    assert claimed.id == job.id
    assert rejected.state == JobState.FAILED
    assert rejected.error == "line 3: missing 'messages'"
    assert jobs.claim("w1", ["tune"], lease_s=60) is None
    with pytest.raises(Conflict):
        jobs.mark_validated(job.id)


def test_progress_checkpoints_and_metrics_are_kept_in_order(jobs: Jobs, project_id: int) -> None:
    job = jobs.enqueue("train", {}, project_id=project_id, actor="x")
    assert jobs.claim("w1", ["train"], lease_s=60) is not None

    jobs.report_progress(job.id, "w1", 0.25, {"loss": 2.5}, 60)
    jobs.save_checkpoint(job.id, "w1", {"step": 10}, 60)
    jobs.log(job.id, "halfway", level="info", data={"tokens_per_s": 100.0})
    done = jobs.finish(job.id, "w1", {"final_loss": 1.0})

    assert done.state == JobState.SUCCEEDED
    assert done.progress == 1.0
    assert done.result == {"final_loss": 1.0}
    assert done.checkpoint == {"step": 10}
    assert done.lease_owner is None
    assert done.finished_at is not None
    events = jobs.events(job.id)
    metric = next(e for e in events if e.level == "metric")
    assert metric.data == {"progress": 0.25, "loss": 2.5}
    messages = [e.message for e in events]
    assert (
        messages.index("checkpoint saved") < messages.index("halfway") < messages.index("succeeded")
    )
    later = jobs.events(job.id, after_id=metric.id)
    assert [e.id for e in later] == [e.id for e in events if e.id > metric.id]


def test_a_dead_workers_job_is_resumed_by_another_from_its_checkpoint(
    modelcycle_services: Services, jobs: Jobs, project_id: int
) -> None:
    job = jobs.enqueue("train", {}, project_id=project_id, actor="x")
    jobs.claim("dead", ["train"], lease_s=60)
    jobs.save_checkpoint(job.id, "dead", {"step": 7}, 60)
    assert jobs.claim("alive", ["train"], lease_s=60) is None  # the lease still holds

    expire_lease(modelcycle_services.store, job.id)
    resumed = jobs.claim("alive", ["train"], lease_s=60)

    assert resumed is not None
    assert resumed.id == job.id
    assert resumed.checkpoint == {"step": 7}
    assert resumed.attempts == 2
    assert resumed.lease_owner == "alive"
    with pytest.raises(LeaseLost):
        jobs.report_progress(job.id, "dead", 0.9, {}, 60)
    with pytest.raises(LeaseLost):
        jobs.finish(job.id, "dead", {"stale": True})
    assert jobs.get(job.id).state == JobState.RUNNING
    assert any("resumed after its worker's lease expired" in e.message for e in jobs.events(job.id))


def test_a_job_whose_workers_keep_dying_fails_when_attempts_run_out(
    modelcycle_services: Services, jobs: Jobs, project_id: int
) -> None:
    job = jobs.enqueue("train", {}, project_id=project_id, actor="x", max_attempts=2)
    for owner in ("w1", "w2"):
        assert jobs.claim(owner, ["train"], lease_s=60) is not None
        expire_lease(modelcycle_services.store, job.id)

    assert jobs.claim("w3", ["train"], lease_s=60) is None

    failed = jobs.get(job.id)
    assert failed.state == JobState.FAILED
    assert failed.error is not None
    assert "no attempts left (2 of 2)" in failed.error


def test_a_failed_attempt_is_retried_with_backoff_then_fails_for_good(
    modelcycle_services: Services, project_id: int
) -> None:
    jobs = Jobs(modelcycle_services.store, retry_base_s=30.0)
    job = jobs.enqueue("work", {}, project_id=project_id, actor="x", max_attempts=2)
    jobs.claim("w1", ["work"], lease_s=60)

    retried = jobs.fail(job.id, "w1", "ValueError: boom")

    assert retried.state == JobState.QUEUED
    assert retried.run_after >= utcnow() + timedelta(seconds=25)
    assert jobs.claim("w1", ["work"], lease_s=60) is None  # backing off
    instant = Jobs(modelcycle_services.store, retry_base_s=0.0)
    with modelcycle_services.store.write() as session:
        session.get_one(JobRow, job.id).run_after = utcnow()
    assert instant.claim("w1", ["work"], lease_s=60) is not None
    failed = instant.fail(job.id, "w1", "ValueError: boom again")
    assert failed.state == JobState.FAILED
    assert failed.error == "ValueError: boom again"
    errors = [e.message for e in instant.events(job.id) if e.level == "error"]
    assert errors[0].startswith("attempt 1 of 2 failed: ValueError: boom; retrying in 30s")
    assert errors[1] == "failed: ValueError: boom again"


def test_cancel_stops_a_waiting_job_at_once_and_flags_a_running_one(
    modelcycle_services: Services, jobs: Jobs, project_id: int
) -> None:
    waiting = jobs.enqueue("work", {}, project_id=project_id, actor="x")
    running = jobs.enqueue("work", {}, project_id=project_id, actor="x")
    with modelcycle_services.store.read() as session:
        audits_before = session.execute(select(func.count(AuditEntryRow.seq))).scalar_one()
    cancelled = jobs.cancel(waiting.id, actor="key:boss")
    claimed = jobs.claim("w1", ["work"], lease_s=60)
    assert claimed is not None
    assert claimed.id == running.id

    flagged = jobs.cancel(running.id, actor="key:boss")
    assert jobs.renew(running.id, "w1", 60) is True
    ended = jobs.finish(running.id, "w1", {"partial": True})

    assert cancelled.state == JobState.CANCELLED
    assert flagged.state == JobState.RUNNING
    assert flagged.cancel_requested
    assert ended.state == JobState.CANCELLED
    assert ended.result == {"partial": True}
    with pytest.raises(Conflict, match="already cancelled"):
        jobs.cancel(waiting.id, actor="key:boss")
    with pytest.raises(NotFound):
        jobs.cancel(999_999, actor="key:boss")
    with modelcycle_services.store.read() as session:
        actions = session.execute(
            select(AuditEntryRow.action, AuditEntryRow.target, AuditEntryRow.actor).where(
                AuditEntryRow.action == "job.cancel"
            )
        ).all()
        audits_after = session.execute(select(func.count(AuditEntryRow.seq))).scalar_one()
    assert {(a, t, who) for a, t, who in actions} == {
        ("job.cancel", f"job:{waiting.id}", "key:boss"),
        ("job.cancel", f"job:{running.id}", "key:boss"),
    }
    assert audits_after == audits_before + 2


def test_release_hands_a_job_back_without_spending_an_attempt(jobs: Jobs, project_id: int) -> None:
    job = jobs.enqueue("work", {}, project_id=project_id, actor="x", max_attempts=1)
    jobs.claim("w1", ["work"], lease_s=60)
    jobs.save_checkpoint(job.id, "w1", {"step": 2}, 60)

    released = jobs.release(job.id, "w1", "worker stopped")
    again = jobs.claim("w2", ["work"], lease_s=60)

    assert released.state == JobState.QUEUED
    assert released.attempts == 0
    assert again is not None
    assert again.attempts == 1
    assert again.checkpoint == {"step": 2}


def test_purge_deletes_only_finished_jobs_older_than_the_cutoff(
    modelcycle_services: Services, jobs: Jobs, project_id: int
) -> None:
    old = jobs.enqueue("work", {}, project_id=project_id, actor="x")
    jobs.claim("w1", ["work"], lease_s=60)
    jobs.finish(old.id, "w1", None)
    waiting = jobs.enqueue("work", {}, project_id=project_id, actor="x")

    assert jobs.purge(finished_before=utcnow() - timedelta(days=1)) == 0
    assert jobs.purge(finished_before=utcnow() + timedelta(seconds=1)) == 1

    with pytest.raises(NotFound):
        jobs.get(old.id)
    assert jobs.get(waiting.id).state == JobState.QUEUED
    with modelcycle_services.store.read() as session:
        left = session.execute(
            select(func.count(JobEventRow.id)).where(JobEventRow.job_id == old.id)
        ).scalar_one()
    assert left == 0
