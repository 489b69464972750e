"""A real HTTP server that receives alert webhooks, for the alert tests.

Imported as ``monitor.webhook_receiver`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Received:
    """One delivery as the receiver saw it."""

    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Receiver:
    """Answers ``status`` (after ``hold_s`` seconds, when set) and keeps what it got."""

    status: int = 200
    hold_s: float = 0.0
    on_request: Callable[[], None] | None = None
    """Called inside the request, before answering (to look at the database meanwhile)."""
    received: list[Received] = field(default_factory=list)
    url: str = ""
    port: int = 0
    _released: threading.Event = field(default_factory=threading.Event)

    def bodies(self) -> list[Any]:
        return [item.json for item in self.received]

    @property
    def shown(self) -> str:
        """How the API shows this receiver's URL: the origin only."""
        return shown_as(self.url)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out closed the socket: expected here, not worth a traceback.
        pass


@contextmanager
def receiving(receiver: Receiver | None = None, path: str = "/hooks/alerts") -> Iterator[Receiver]:
    """Serve ``receiver`` on a free 127.0.0.1 port until the block exits."""
    found = receiver or Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            found.received.append(Received(self.path, dict(self.headers.items()), raw))
            if found.on_request is not None:
                found.on_request()
            if found.hold_s:
                found._released.wait(found.hold_s)
            self.send_response(found.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    found.port = int(server.server_address[1])
    found.url = f"http://127.0.0.1:{found.port}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found._released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def refused_url() -> str:
    """A URL on a 127.0.0.1 port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def shown_as(url: str) -> str:
    """``http://127.0.0.1:PORT/...`` as the API shows it: ``http://127.0.0.1:PORT/…``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"
