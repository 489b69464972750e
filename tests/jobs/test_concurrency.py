"""Two workers never run the same job: threads and processes racing for one queue."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from modelcycle.jobs import JobContext, Jobs, JobState, Worker
from modelcycle.services import Services

SCRIPT = Path(__file__).with_name("worker_process.py")
JOBS = 60


def test_racing_worker_threads_run_each_job_exactly_once(jobs: Jobs, project_id: int) -> None:
    ids = [jobs.enqueue("race", {"n": n}, project_id=project_id, actor="x").id for n in range(JOBS)]
    ran: list[int] = []
    lock = threading.Lock()
    go = threading.Barrier(4)

    def handler(context: JobContext) -> None:
        with lock:
            ran.append(context.job.id)

    def drain(name: str) -> None:
        worker = Worker(jobs, {"race": handler}, owner=name)
        go.wait()
        while worker.run_once():
            pass

    threads = [threading.Thread(target=drain, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert sorted(ran) == ids
    finished = [jobs.get(job_id) for job_id in ids]
    assert {job.state for job in finished} == {JobState.SUCCEEDED}
    assert {job.attempts for job in finished} == {1}
    owners = Counter(
        e.message.split(" by ")[1].split(" ")[0]
        for job_id in ids
        for e in jobs.events(job_id)
        if e.message.startswith("started by")
    )
    assert sum(owners.values()) == JOBS
    assert len(owners) >= 2, f"the workers did not race: {owners}"


@pytest.mark.slow
def test_racing_worker_processes_run_each_job_exactly_once(
    modelcycle_services: Services, jobs: Jobs, project_id: int
) -> None:
    ids = [jobs.enqueue("race", {"n": n}, project_id=project_id, actor="x").id for n in range(JOBS)]
    url = modelcycle_services.store.url
    processes = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), url, "drain"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    results = [process.communicate(timeout=120)[0] for process in processes]

    per_process = [json.loads(out.strip().splitlines()[-1]) for out in results]
    ran = [job_id for done in per_process for job_id in done]
    assert sorted(ran) == ids, "a job ran twice or not at all"
    assert all(process.returncode == 0 for process in processes)
    assert {jobs.get(job_id).attempts for job_id in ids} == {1}
