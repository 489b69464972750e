"""Whole answers from plain ``http://`` upstreams, on the event loop's own thread.

pyqwest sends each request from tokio's threads: the event loop's thread pays
for the hand-over, the wake-up that brings the answer back and the answer's
conversion, and tokio's threads take a core's share that the gateway's Python
needs. An upstream on the cluster's network (vLLM, a llama.cpp server, Ollama)
speaks plain HTTP/1.1, and there one write and one read on a pooled keep-alive
connection do: the request's bytes go out in one ``write``, the answer is
parsed as it arrives by httptools (the parser uvicorn serves with), and the
waiting call resumes. ``benchmarks/upstream_clients.py`` measures the three
clients side by side.

Everything else (TLS, a proxy from the environment) stays with pyqwest
(``openai_http.WholeAnswers`` chooses). The semantics are pyqwest's:

* a call that is cancelled (the client went away, a deadline) closes its
  connection, so the upstream sees the disconnect and stops generating;
* ``connect_timeout_s`` bounds opening a connection, ``timeout_s`` the answer;
* idle connections are kept ``keepalive_s`` (0: one connection per call), and
  one the upstream closed is never used again;
* a connection closed before the answer is complete fails the call, which is
  not sent again here: the upstream may have started on it (the deployment's
  retries and fallbacks decide). ``keepalive_s`` stays under the upstream's own
  idle timeout so that a kept connection is not closed just as it is reused.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from modelcycle.backends.openai_params import OpenAIParams

DROPPED = "the upstream dropped the connection"
"""What a client is told of an answer the upstream cut short (any HTTP client's)."""
Answer = tuple[int, bytes]
"""An answer's status code and (decoded) body."""


class PlainHTTPError(Exception):
    """A call that got no complete answer; the message says why, for the client."""


class CannotConnect(PlainHTTPError):
    """No connection could be opened (the message is the operating system's reason)."""


class UpstreamClosed(PlainHTTPError):
    """The upstream closed the connection before its answer was complete."""


class BadAnswer(PlainHTTPError):
    """The upstream's bytes are not an HTTP/1.1 answer this client reads."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's requests go: the address, and the request line's target and Host."""

    host: str
    port: int
    path: str
    authority: str


def plain_target(url: str) -> Target | None:
    """The ``Target`` of an ``http://`` URL; ``None`` for any other scheme."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname
    authority = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        authority += f":{parts.port}"
    return Target(host, parts.port or 80, path, authority)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a request written whole, its answer parsed as it arrives."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        """The pool's generation when it was opened (a closed pool keeps none of its own)."""
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.keep_alive = False
        """Whether the last answer leaves the connection open for another request."""
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._body: list[bytes] = []
        self._encoding = b""
        self._framed = False
        self._headers_done = False

    def send(self, data: bytes, waiter: asyncio.Future[Answer]) -> None:
        """Write one request; ``waiter`` gets its answer, or the reason there is none."""
        assert self.transport is not None
        self._waiter = waiter
        self.keep_alive = self._headers_done = self._framed = False  # nothing of it yet
        if self.closed:  # lost since it was taken: a write would vanish without a word
            waiter.set_exception(UpstreamClosed(DROPPED))
            return
        self.transport.write(data)

    def abort(self) -> None:
        """Close at once (the upstream sees the disconnect)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.abort()  # bytes nobody asked for: the connection is out of step
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadAnswer(f"the upstream's answer is not valid HTTP ({exc})"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._headers_done and not self._framed:  # an answer delimited by the close
            self._finish()
        else:
            self._fail(UpstreamClosed(DROPPED))

    # -- httptools' callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._body = []
        self._encoding = b""
        self._framed = self._headers_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"content-encoding":
            self._encoding = value.strip().lower()
        elif lower in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()
        self._finish()

    def _finish(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            body = _decoded(b"".join(self._body), self._encoding)
        except BadAnswer as exc:
            self.keep_alive = False
            waiter.set_exception(exc)
            return
        waiter.set_result((self._parser.get_status_code(), body))

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


def _decoded(body: bytes, encoding: bytes) -> bytes:
    """The body without its content-encoding (sent anyway, though we ask for none)."""
    try:
        if encoding in (b"", b"identity"):
            return body
        if encoding in (b"gzip", b"x-gzip"):
            return zlib.decompress(body, wbits=31)
        if encoding == b"deflate":
            return zlib.decompress(body)
    except zlib.error:
        raise BadAnswer("the upstream's compressed answer is corrupt") from None
    name = encoding.decode("latin-1")
    raise BadAnswer(f"the upstream's content-encoding {name!r} is not supported")


class PlainHTTPPool:
    """Keep-alive connections to plain-HTTP upstreams, used from one event loop at a time."""

    def __init__(self, options: OpenAIParams):
        self._options = options
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0
        self._sweep: asyncio.TimerHandle | None = None
        self._header_block: tuple[dict[str, str], bytes, bool] | None = None
        """The last headers, their lines, and whether they name the Host themselves."""

    async def post(self, target: Target, body: bytes, headers: dict[str, str]) -> Answer:
        """The status and body of the answer to ``body`` POSTed to ``target``."""
        request = self._head(target, headers, len(body)) + body
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # connections serve the loop that opened them
            self._idle, self._loop, self._sweep = {}, loop, None
        connection = self._take(target) or await self._connect(loop, target)
        return await self._exchange(loop, connection, target, request)

    async def close(self) -> None:
        """Close the idle connections; the busy ones close once their answer is read."""
        self._generation += 1
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.abort()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    # -- connections -------------------------------------------------------------------

    async def _exchange(
        self,
        loop: asyncio.AbstractEventLoop,
        connection: _Connection,
        target: Target,
        request: bytes,
    ) -> Answer:
        waiter: asyncio.Future[Answer] = loop.create_future()
        connection.send(request, waiter)
        limit = self._options.timeout_s
        timer = loop.call_later(limit, _expire, waiter) if limit else None
        try:
            answer = await waiter
        except BaseException:
            connection.abort()  # cancelled, timed out or broken: the upstream sees it close
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if connection.keep_alive and not connection.closed and self._keeps(connection, loop):
            connection.idle_since = time.monotonic()
            address = (target.host, target.port)
            idle = self._idle.get(address)
            if idle is None:
                idle = self._idle[address] = deque()
            idle.append(connection)
            if self._sweep is None:
                self._sweep = loop.call_later(self._options.keepalive_s, self._close_idle, loop)
        else:
            connection.abort()
        return answer

    def _keeps(self, connection: _Connection, loop: asyncio.AbstractEventLoop) -> bool:
        # Not when the pool has moved to another loop meanwhile (a thread's own loop).
        return (
            self._options.keepalive_s > 0
            and connection.generation == self._generation
            and self._loop is loop
        )

    def _take(self, target: Target) -> _Connection | None:
        idle = self._idle.get((target.host, target.port))
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be stale
            if not connection.closed:
                return connection
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop, target: Target) -> _Connection:
        generation = self._generation
        limit = self._options.connect_timeout_s
        try:
            async with asyncio.timeout(limit):
                _, connection = await loop.create_connection(
                    lambda: _Connection(generation), target.host, target.port
                )
        except TimeoutError:
            raise CannotConnect(f"no connection within {limit:g} s") from None
        except OSError as exc:
            raise CannotConnect(_reason(exc)) from None
        return connection

    def _close_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close connections idle for ``keepalive_s``; look again while some remain."""
        if loop is not self._loop:
            return  # scheduled before the pool moved to another loop: not its connections
        self._sweep = None
        limit = self._options.keepalive_s
        oldest = time.monotonic() - limit
        remaining = False
        for connections in self._idle.values():
            while connections and (connections[0].closed or connections[0].idle_since <= oldest):
                connections.popleft().abort()
            remaining = remaining or bool(connections)
        if remaining:
            self._sweep = loop.call_later(limit / 2, self._close_idle, loop)

    # -- the request's bytes -----------------------------------------------------------

    def _head(self, target: Target, headers: dict[str, str], length: int) -> bytes:
        """The request line and headers (the headers' block kept while they are the same)."""
        block = self._header_block
        if block is None or block[0] is not headers:
            named = any(name.lower() == "host" for name in headers)
            block = self._header_block = (headers, _header_lines(headers), named)
        host = "" if block[2] else f"Host: {target.authority}\r\n"
        start = f"POST {target.path} HTTP/1.1\r\n{host}".encode("latin-1")
        return start + block[1] + f"Content-Length: {length}\r\n\r\n".encode("latin-1")


_OURS = frozenset({"content-length", "transfer-encoding", "connection", "accept-encoding"})
"""Headers this client writes itself (the body is sent whole, on a kept connection)."""


def _header_lines(headers: dict[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if name.lower() in _OURS:
            continue
        if any(c in text for text in (name, value) for c in "\r\n\0") or ":" in name:
            raise PlainHTTPError(f"the request header {name!r} is not a valid HTTP header")
        lines.append(f"{name}: {value}\r\n")
    lines.append("Accept-Encoding: identity\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise PlainHTTPError("a request header holds characters HTTP cannot carry") from None


def _reason(exc: OSError) -> str:
    """The operating system's reason, without the address (that stays in the log)."""
    if isinstance(exc, socket.gaierror):
        return exc.strerror or "the upstream's host name does not resolve"
    if exc.errno:
        return os.strerror(exc.errno)
    return "connection failed"


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
