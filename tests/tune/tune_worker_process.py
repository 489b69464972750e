"""A worker with the built-in handlers in a process of its own, for the test that kills it.

``python tune_worker_process.py HOME DATABASE_URL LEASE_S``: runs one job (a
tuning job, in the test) and exits; the test SIGKILLs it mid-training.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from modelcycle.jobs import Worker
from modelcycle.services import build_services, job_handlers
from modelcycle.settings import Settings


def main() -> None:
    home, url, lease_s = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    services = build_services(Settings(home=home, database_url=url, register_default_model=False))
    worker = Worker(services.jobs, job_handlers(services), owner="doomed", lease_s=lease_s)
    print("ready", flush=True)
    while not worker.run_once():
        threading.Event().wait(0.05)
    services.close()


if __name__ == "__main__":
    main()
