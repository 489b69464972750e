"""``modelcycle up``: migrate, bootstrap and serve the API in this process."""

from __future__ import annotations

import ctypes
import gc
import os
import signal
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from sqlalchemy.engine import make_url

from modelcycle.api import create_app
from modelcycle.api.http_protocol import CoalescingHttpToolsProtocol
from modelcycle.services import Services, bootstrap, build_services
from modelcycle.settings import Settings, load_settings
from modelcycle.ui import install_dashboard

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="MODELCYCLE_CONFIG",
        help="YAML file of settings (MODELCYCLE_* environment variables override it).",
        metavar="FILE",
        show_default=False,
    ),
]


def local_services(settings: Settings) -> Services:
    """Services over ``settings``, after checking that the database answers."""
    services = build_services(settings)
    try:
        services.store.ping()
    except BaseException:
        services.close()
        raise
    return services


def masked_database_url(settings: Settings) -> str:
    """The database URL with any password replaced by ``***``."""
    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def tune_gc(settings: Settings) -> None:
    """The server process's garbage-collector settings (``gc_freeze``, ``gc_gen0_threshold``)."""
    if settings.gc_gen0_threshold:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(settings.gc_gen0_threshold, middle, old)
    if settings.gc_freeze:
        gc.collect()  # what is garbage now must not be frozen with the rest
        gc.freeze()


M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
"""glibc's ``mallopt`` parameters (malloc.h)."""
TOP_PAD_MB = 16


def tune_malloc(settings: Settings) -> bool:
    """Have glibc keep ``malloc_keep_mb`` of freed heap memory; ``False``: left as it was.

    The recorder holds each request's trace text until its batch is shipped, then
    frees a batch at once; by default glibc gives that memory back, and the next
    batch faults it in again page by page (measured: one fault and about 5 µs of
    system time per request). Not glibc (musl, macOS): nothing to do.
    """
    keep = settings.malloc_keep_mb * 1024 * 1024
    if not keep or not _glibc():
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    pad = min(keep, TOP_PAD_MB * 1024 * 1024)
    return bool(mallopt(M_TRIM_THRESHOLD, keep)) and bool(mallopt(M_TOP_PAD, pad))


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):  # not a glibc system
        return False


class Terminated(Exception):
    """SIGTERM arrived (after uvicorn's graceful shutdown)."""


def _terminated(_signum: int, _frame: object) -> None:
    raise Terminated


def up(
    host: Annotated[
        str | None,
        typer.Option(
            help="Interface to listen on [default: 127.0.0.1, or MODELCYCLE_HOST].",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="TCP port to listen on [default: 8000, or MODELCYCLE_PORT].", show_default=False
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Migrate the database, create the first admin key if needed, and serve the API."""
    from modelcycle.cli.trace_writer import writer_process  # it imports this module
    from modelcycle.cli.worker import spawn_worker, stop_worker

    settings = load_settings(config, host=host, port=port)
    services = local_services(settings)
    worker = None
    try:
        result = bootstrap(services)
        # After bootstrap: the worker needs the migrated schema.
        worker = spawn_worker(config) if settings.worker else None
        writer = writer_process(settings, config)
        if writer is not None and writer.start():
            services.recorder.ship_to(writer)
        typer.echo(f"modelcycle listening on http://{settings.host}:{settings.port}")
        typer.echo(
            f"  dashboard: http://{settings.host}:{settings.port}/ (sign in with an API key)"
        )
        typer.echo(f"  OpenAI-compatible API: http://{settings.host}:{settings.port}/v1")
        typer.echo(f"  data dir: {settings.home}")
        typer.echo(f"  database: {masked_database_url(settings)}")
        if worker is not None:
            typer.echo(f"  background worker: pid {worker.pid} (modelcycle worker)")
        if writer is not None and writer.pid is not None:
            typer.echo(f"  trace writer: pid {writer.pid} (modelcycle trace-writer)")
        if result.default_model_registered:
            typer.echo("  registered the embedded default model (alias: production)")
        if result.default_deployment_created:
            typer.echo("  created the deployment 'default' (call it as model=\"default\")")
        if result.admin_key is not None:
            typer.echo("")
            typer.echo(f"admin API key: {result.admin_key}")
            typer.echo("  shown only now; it is stored as a hash. Keep it in MODELCYCLE_API_KEY.")
            typer.echo("")
        app = create_app(services)
        install_dashboard(app, services)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level,
                loop="auto",
                http=CoalescingHttpToolsProtocol,
            )
        )
        tune_gc(settings)
        tune_malloc(settings)
        # uvicorn shuts down gracefully on SIGINT or SIGTERM, then raises the signal
        # again: SIGTERM (docker stop, systemd) must then also end up in ``finally``,
        # which writes the traces still queued, instead of killing the process.
        signal.signal(signal.SIGTERM, _terminated)
        server.run()
    except (KeyboardInterrupt, Terminated):
        typer.echo("stopped", err=True)
    finally:
        if worker is not None:
            stop_worker(worker)
        services.close()
