"""A worker in a process of its own, for the tests that race or kill workers.

``python worker_process.py DATABASE_URL drain``: waits for ``go`` on stdin, then
claims and finishes ``race`` jobs until none is left and prints their ids as JSON.

``python worker_process.py DATABASE_URL steps LEASE_S``: runs ``steps`` jobs with
``steps_handler`` (the test kills it mid-job).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from modelcycle.jobs import JobContext, Jobs, Worker
from modelcycle.store import Store

STEPS = 6
PAUSE_AT = 3
"""The first attempt stops making progress after this step (and gets killed there)."""


def steps_handler(context: JobContext) -> dict[str, Any]:
    """Checkpoints after each of ``STEPS`` steps; a fresh start hangs after ``PAUSE_AT``."""
    start = int((context.resume_from or {}).get("step", 0))
    for step in range(start + 1, STEPS + 1):
        context.log(f"step {step} by pid {os.getpid()}")
        context.checkpoint({"step": step})
        if start == 0 and step == PAUSE_AT:
            threading.Event().wait()  # hang here until killed
    return {"resumed_from": start, "steps": STEPS}


def drain(jobs: Jobs) -> None:
    owner = f"proc-{os.getpid()}"
    print("ready", flush=True)
    sys.stdin.readline()
    done = []
    while (job := jobs.claim(owner, ["race"], lease_s=60)) is not None:
        jobs.finish(job.id, owner, {"by": owner})
        done.append(job.id)
    print(json.dumps(done), flush=True)


def main() -> None:
    url, mode = sys.argv[1], sys.argv[2]
    store = Store(url)
    jobs = Jobs(store)
    if mode == "drain":
        drain(jobs)
    else:
        worker = Worker(jobs, {"steps": steps_handler}, lease_s=float(sys.argv[3]))
        print("ready", flush=True)
        while not worker.run_once():
            threading.Event().wait(0.05)
    store.dispose()


if __name__ == "__main__":
    main()
