"""``modelcycle trace-writer``: the child process that stores ``modelcycle up``'s traces.

Hidden: ``modelcycle up`` starts it (``trace_writer = "process"``) and talks to
it over its stdin and stdout (``modelcycle.monitor.writer_process``). It ignores
SIGINT and SIGTERM, which a terminal or a service manager sends to the whole
process group: it stops when the server closes the pipe, after storing
everything it was given, and so also when the server dies. It runs only when a
CPU would otherwise idle (``background_priority``): when the machine is busy,
requests go first, and the writer catches up in the gaps (its queue is bounded;
overflow is counted).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from modelcycle.cli.server import ConfigOption, tune_gc, tune_malloc
from modelcycle.monitor import gil
from modelcycle.monitor.writer_process import WriterProcess, serve
from modelcycle.services import build_services
from modelcycle.settings import Settings, load_settings

NICENESS = 19
"""The writer's niceness (what counts where the idle scheduling class is missing)."""


def background_priority() -> bool:
    """Run this process only on CPU time nothing else wants; ``True`` when it does.

    Linux's ``SCHED_IDLE`` class: measured against niceness 19 in the tracing
    benchmark (docs/performance.md), the gateway kept ~5% more of its
    requests/s, since a niced process still takes its share of a busy core.
    Elsewhere, or where the class is refused, niceness 19 alone. Every thread:
    on Linux both are per thread, and libraries start native threads at import.
    """
    idle = getattr(os, "SCHED_IDLE", None)
    done = idle is not None
    for thread in _threads():
        try:
            os.setpriority(os.PRIO_PROCESS, thread, NICENESS)  # lowering is always allowed
        except OSError:  # the thread ended since it was listed
            continue
        done = _set_class(idle, thread) and done
    return done


@contextlib.contextmanager
def normal_class() -> Iterator[None]:
    """The normal CPU class (still at niceness 19) while the database write lock is held.

    On a machine kept busy (a local model generating on every core) an idle-class
    process may not run for seconds: holding SQLite's lock meanwhile would make
    every other writer wait, and fail at its busy timeout.
    """
    _set_class(os.SCHED_OTHER)
    try:
        yield
    finally:
        _set_class(os.SCHED_IDLE)


def _set_class(policy: int | None, thread: int = 0) -> bool:
    if policy is None:
        return False
    try:
        os.sched_setscheduler(thread, policy, os.sched_param(0))
    except OSError:
        return False
    return True


def _threads() -> list[int]:
    """This process's thread ids (``[0]``, the caller, where ``/proc`` is missing)."""
    try:
        return [int(name) for name in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def trace_writer(config: ConfigOption = None) -> None:
    """Store the traces a modelcycle up server sends on stdin (started by modelcycle up)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    idle = background_priority()
    settings = load_settings(config)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The server counts and exports the request metrics; this process only stores spans.
    services = build_services(settings, otlp_metrics=False)
    if idle:
        services.recorder.writer.holding_lock = normal_class
    gil.alone()  # no requests here to pause for
    tune_gc(settings)  # the garbage collector stops rescanning the services' objects
    tune_malloc(settings)
    try:
        serve(services.recorder, sys.stdin.fileno(), sys.stdout.buffer)
    finally:
        services.close()


def writer_command(config: Path | None = None) -> list[str]:
    """The child's command line; its settings come from ``config`` and the environment."""
    command = [sys.executable, "-c", "from modelcycle.cli.main import main; main()"]
    command.append("trace-writer")
    if config is not None:
        command += ["--config", str(config)]
    return command


def writer_process(settings: Settings, config: Path | None) -> WriterProcess | None:
    """The writer child for ``modelcycle up``, unless traces are written in the server."""
    if not settings.tracing or settings.trace_writer != "process":
        return None
    return WriterProcess(writer_command(config))
