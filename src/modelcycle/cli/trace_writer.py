"""``modelcycle trace-writer``: the child process that stores ``modelcycle up``'s traces.

Hidden: ``modelcycle up`` starts it (``trace_writer = "process"``) and talks to
it over its stdin and stdout (``modelcycle.monitor.writer_process``). It ignores
SIGINT and SIGTERM, which a terminal or a service manager sends to the whole
process group: it stops when the server closes the pipe, after storing
everything it was given, and so also when the server dies. It runs at a lower
CPU priority (``NICENESS``): when the machine is busy, requests go first, and
the writer catches up in the gaps (its queue is bounded; overflow is counted).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

from modelcycle.cli.server import ConfigOption
from modelcycle.monitor.writer_process import WriterProcess, serve
from modelcycle.services import build_services
from modelcycle.settings import Settings, load_settings

NICENESS = 19
"""Added to the writer's niceness: background work yields the CPU to requests."""


def trace_writer(config: ConfigOption = None) -> None:
    """Store the traces a modelcycle up server sends on stdin (started by modelcycle up)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    os.nice(NICENESS)
    settings = load_settings(config)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The server counts and exports the request metrics; this process only stores spans.
    services = build_services(settings, otlp_metrics=False)
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
