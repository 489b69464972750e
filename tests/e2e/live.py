"""A real uvicorn server on a socket, shared by the e2e and CLI tests.

``tests/`` is on ``sys.path`` (pytest's default import mode), so test modules and
conftests import this as ``e2e.live``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn

from modelcycle.api import create_app
from modelcycle.api.http_protocol import CoalescingHttpToolsProtocol
from modelcycle.services import Services
from modelcycle.ui import install_dashboard


@dataclass(frozen=True, slots=True)
class LiveServer:
    """A server answering at ``url``; ``admin_key`` is its bootstrap admin key."""

    url: str
    admin_key: str
    services: Services


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answers(url: str, *, timeout_s: float = 10.0, status: int = 200) -> None:
    """Poll ``url`` until it answers ``status``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code == status:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer {status} within {timeout_s}s")
        time.sleep(0.05)


@contextmanager
def serve(services: Services, admin_key: str, *, dashboard: bool = False) -> Iterator[LiveServer]:
    """Serve ``services`` from a background thread until the block exits (with the UI)."""
    # Binding the socket here (not in uvicorn) leaves no window for a port race.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(services)
    if dashboard:
        install_dashboard(app, services)
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        ws="none",
        lifespan="off",
        http=CoalescingHttpToolsProtocol,  # as ``modelcycle up`` serves
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/healthz")
        yield LiveServer(url=url, admin_key=admin_key, services=services)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
