"""``modelcycle worker``: run background jobs (drift checks, alerts, retention) on this machine.

Each thread is one ``Worker`` leasing jobs from the database, so any number of
worker processes, on any number of machines, can share one database; the
first thread also turns due schedules into jobs. SIGINT or SIGTERM stops it
gracefully: the running jobs finish (or, after the grace period, are handed
back to resume elsewhere from their last checkpoint).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from modelcycle.cli.server import ConfigOption, local_services
from modelcycle.services import build_worker
from modelcycle.settings import load_settings

THREADS_HELP = "Jobs run at once; more than one keeps alert checks going while a long job runs."


def worker(
    config: ConfigOption = None,
    threads: Annotated[int, typer.Option(min=1, max=16, help=THREADS_HELP)] = 2,
    grace: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds a running job may take to finish after SIGINT/SIGTERM before it "
            "is handed back.",
        ),
    ] = 30.0,
    parent: Annotated[
        int | None,
        typer.Option(
            "--parent-pid",
            hidden=True,
            help="Stop when this process (the one that started us) ends; modelcycle up uses it.",
        ),
    ] = None,
) -> None:
    """Run background jobs until interrupted (modelcycle up starts one for you)."""
    settings = load_settings(config)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    services = local_services(settings)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        workers = [build_worker(services, run_schedules=index == 0) for index in range(threads)]
        for one in workers:
            one.grace_s = grace
        kinds = ", ".join(sorted(workers[0].handlers))
        typer.echo(f"modelcycle worker {workers[0].owner}: {threads} thread(s); jobs: {kinds}")
        running = [
            threading.Thread(target=one.run, args=(stop,), name=f"modelcycle-worker-{index}")
            for index, one in enumerate(workers)
        ]
        for thread in running:
            thread.start()
        while not stop.wait(0.5):
            if parent is not None and os.getppid() != parent:
                stop.set()  # the server died without stopping us (SIGKILL): no orphans
        typer.echo("stopping: letting running jobs finish", err=True)
        for thread in running:
            thread.join()
        typer.echo("worker stopped", err=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        services.close()


# -- the worker of ``modelcycle up`` ----------------------------------------------------

STOP_GRACE_S = 10.0
"""How long ``modelcycle up``'s worker may spend finishing jobs when the server stops."""


def spawn_worker(config: Path | None) -> subprocess.Popen[bytes]:
    """Start ``modelcycle worker`` as a child process with this process's settings.

    A process of its own, so that drift checks and other model work never hold
    the gateway's GIL; the environment (``MODELCYCLE_*``) is inherited as is.
    """
    command = [sys.executable, "-c", "from modelcycle.cli.main import main; main()", "worker"]
    # The pid, not "our parent at start-up": up may die before this child gets that far.
    command += ["--grace", str(STOP_GRACE_S), "--parent-pid", str(os.getpid())]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.Popen(command)  # noqa: S603 - our own interpreter and arguments


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Stop the child worker gracefully (SIGTERM), killing it if it overstays its grace."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S + 10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
