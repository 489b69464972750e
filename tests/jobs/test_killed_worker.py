"""A worker killed mid-job (SIGKILL): another worker resumes the job from its checkpoint."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from jobs.worker_process import PAUSE_AT, STEPS, steps_handler
from modelcycle.jobs import Jobs, JobState, Worker
from modelcycle.services import Services

SCRIPT = Path(__file__).with_name("worker_process.py")
LEASE_S = 1.0
DEADLINE_S = 60.0


def test_a_killed_workers_job_resumes_elsewhere_from_its_last_checkpoint(
    modelcycle_services: Services, jobs: Jobs, project_id: int
) -> None:
    job = jobs.enqueue("steps", {}, project_id=project_id, actor="x", max_attempts=3)
    doomed = subprocess.Popen(
        [sys.executable, str(SCRIPT), modelcycle_services.store.url, "steps", str(LEASE_S)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # The job's own checkpoint is the signal that the doomed worker is mid-job.
        deadline = time.monotonic() + DEADLINE_S
        while jobs.get(job.id).checkpoint != {"step": PAUSE_AT}:
            assert doomed.poll() is None, "the worker process died on its own"
            assert time.monotonic() < deadline, "the worker never reached its checkpoint"
            time.sleep(0.05)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(DEADLINE_S)
    finally:
        if doomed.poll() is None:
            doomed.kill()
        doomed.communicate()
    assert jobs.get(job.id).state == JobState.RUNNING  # nobody told the queue

    rescuer = Worker(jobs, {"steps": steps_handler}, owner="rescuer", lease_s=LEASE_S)
    deadline = time.monotonic() + DEADLINE_S
    while not rescuer.run_once():  # nothing is claimable until the dead lease runs out
        assert time.monotonic() < deadline, "the dead worker's job was never resumed"
        time.sleep(0.05)

    done = jobs.get(job.id)
    assert done.state == JobState.SUCCEEDED
    assert done.attempts == 2
    assert done.result == {"resumed_from": PAUSE_AT, "steps": STEPS}
    logged = [
        e.message.split(" by ")[0] for e in jobs.events(job.id) if e.message.startswith("step")
    ]
    assert logged == [f"step {n}" for n in range(1, STEPS + 1)], "a step ran twice or was skipped"
    assert any(
        "resumed after its worker's lease expired by rescuer" in e.message
        for e in jobs.events(job.id)
    )
