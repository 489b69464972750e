"""The server's HTTP protocol: a whole answer leaves in one write, nothing is held back.

``CoalescingTransport`` over a recording transport shows the writes the socket
gets; a real uvicorn server with the protocol shows what a client receives.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from modelcycle.api.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport


class Recording:
    """The socket's side: every ``write`` it was given, and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000)}.get(name, default)


def coalescing(recording: Recording) -> CoalescingTransport:
    return CoalescingTransport(cast(asyncio.Transport, recording), asyncio.get_running_loop())


async def test_headers_and_body_written_together_leave_as_one_write() -> None:
    recording = Recording()
    transport = coalescing(recording)
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert recording.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    await asyncio.sleep(0)
    assert len(recording.writes) == 1  # nothing left over for the loop's next turn


async def test_a_lone_write_leaves_on_the_loops_next_turn() -> None:
    recording = Recording()
    transport = coalescing(recording)
    transport.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    assert recording.writes == []
    await asyncio.sleep(0)
    assert recording.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
    transport.write(b"5\r\nhello\r\n")
    await asyncio.sleep(0)
    assert recording.writes[-1] == b"5\r\nhello\r\n"


async def test_close_writes_what_is_held_first_and_abort_drops_it() -> None:
    recording = Recording()
    transport = coalescing(recording)
    transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    transport.close()
    assert recording.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"]
    assert recording.closed

    recording = Recording()
    transport = coalescing(recording)
    transport.write(b"partial")
    transport.abort()
    await asyncio.sleep(0)
    assert recording.writes == []
    assert recording.aborted


async def test_nothing_is_written_to_a_connection_closed_meanwhile() -> None:
    recording = Recording()
    transport = coalescing(recording)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    recording.closed = True  # the client went away before the loop's next turn
    await asyncio.sleep(0)
    assert recording.writes == []


# -- a real server ---------------------------------------------------------------------------


SOCKET_WRITES: list[bytes] = []
"""What the real server's sockets were given to write, one item per write."""


class CountingTransport:
    """The socket's transport, recording each write."""

    def __init__(self, transport: asyncio.Transport):
        self._transport = transport

    def write(self, data: bytes) -> None:
        SOCKET_WRITES.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CountedProtocol(CoalescingHttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, CountingTransport(transport)))


async def whole(_: Request) -> Response:
    return JSONResponse({"answer": "x" * 100})


async def streamed(_: Request) -> Response:
    async def pieces() -> Any:
        for word in ("one", "two", "three"):
            yield f"data: {word}\n\n"
            await asyncio.sleep(0.01)

    return StreamingResponse(pieces(), media_type="text/event-stream")


@pytest.fixture
def server() -> Iterator[int]:
    app = Starlette(routes=[Route("/whole", whole), Route("/stream", streamed)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", lifespan="off", http=CountedProtocol
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    port = sock.getsockname()[1]
    for _ in range(200):
        if running.started:
            break
        threading.Event().wait(0.02)
    SOCKET_WRITES.clear()
    try:
        yield port
    finally:
        running.should_exit = True
        thread.join(timeout=10)
        sock.close()


def exchange(client: socket.socket, request: bytes, until: bytes) -> bytes:
    """Send ``request``; what is received until ``until``."""
    received = b""
    client.sendall(request)
    while not received.endswith(until):
        piece = client.recv(65536)
        assert piece, f"the server closed the connection after {received!r}"
        received += piece
    return received


def test_each_whole_answer_is_one_write_on_a_keep_alive_connection(server: int) -> None:
    body = b'{"answer":"' + b"x" * 100 + b'"}'
    with socket.create_connection(("127.0.0.1", server), timeout=5) as client:
        for _ in range(5):
            received = exchange(client, b"GET /whole HTTP/1.1\r\nHost: t\r\n\r\n", body)
            assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert len(SOCKET_WRITES) == 5  # uvicorn's own protocol: 10 (headers, then body)
    assert all(write.startswith(b"HTTP/1.1 200 OK") for write in SOCKET_WRITES)
    assert all(write.endswith(body) for write in SOCKET_WRITES)


def test_a_stream_still_leaves_chunk_by_chunk(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=5) as client:
        received = exchange(client, b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n", b"0\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    for word in (b"one", b"two", b"three"):
        assert b"data: " + word in received
    # Pieces 10 ms apart are not held for one another: each leaves on its own.
    assert sum(b"data: " in write for write in SOCKET_WRITES) == 3
