"""Whole answers from plain-HTTP upstreams on the event loop (``backends.plain_http``).

Each test runs a raw asyncio server in the test's own loop that writes exactly the
bytes under test, and counts the connections it accepts and sees closed.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from modelcycle.backends.openai_params import parse_params
from modelcycle.backends.plain_http import (
    BadAnswer,
    CannotConnect,
    PlainHTTPError,
    PlainHTTPPool,
    Target,
    UpstreamClosed,
    plain_target,
)

HEADERS = {"Content-Type": "application/json", "User-Agent": "modelcycle-test"}
BODY = b'{"model": "m", "messages": []}'

Answerer = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]
"""Answers one request (its raw bytes); ``False`` ends the connection."""


def whole(body: bytes, extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


@dataclass
class RawUpstream:
    answer: Answerer
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    closed_by_client: int = 0
    port: int = 0

    @property
    def target(self) -> Target:
        found = plain_target(f"http://127.0.0.1:{self.port}/v1/chat/completions")
        assert found is not None
        return found

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.answer(reader, writer, request):
                    return
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                self.closed_by_client += 1
        except ConnectionResetError:
            self.closed_by_client += 1
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answerer], Awaitable[RawUpstream]]]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answerer) -> RawUpstream:
        upstream = RawUpstream(answer)
        server = await asyncio.start_server(upstream.accept, "127.0.0.1", 0)
        upstream.port = server.sockets[0].getsockname()[1]
        servers.append(server)
        return upstream

    yield start
    for server in servers:
        server.close()


def pool(**params: Any) -> PlainHTTPPool:
    return PlainHTTPPool(parse_params({"model": "m", **params}))


async def ok(_: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bool:
    writer.write(whole(b'{"echo": %d}' % len(request)))
    await writer.drain()
    return True


async def drop(_: asyncio.StreamReader, __: asyncio.StreamWriter, ___: bytes) -> bool:
    return False  # closes without answering


def in_turn(*answerers: Answerer) -> Answerer:
    """The n-th request answered by the n-th of ``answerers`` (the last one from then on)."""
    calls = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: bytes) -> bool:
        nonlocal calls
        calls += 1
        return await answerers[min(calls, len(answerers)) - 1](reader, writer, r)

    return answer


async def until_closed(upstream: RawUpstream, count: int = 1) -> None:
    async with asyncio.timeout(5):
        while upstream.closed_by_client < count:
            await asyncio.sleep(0.01)


async def test_answers_come_back_over_one_kept_connection_with_the_request_intact(
    serve: Callable[[Answerer], Awaitable[RawUpstream]],
) -> None:
    upstream = await serve(ok)
    client = pool()

    answers = [await client.post(upstream.target, BODY, HEADERS) for _ in range(3)]
    await client.close()

    assert answers == [(200, b'{"echo": %d}' % len(upstream.requests[0]))] * 3
    assert upstream.connections == 1
    head, _, body = upstream.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
    assert f"Host: 127.0.0.1:{upstream.port}" in lines
    assert "Content-Type: application/json" in lines
    assert f"Content-Length: {len(BODY)}" in lines
    assert body == BODY
    await until_closed(upstream)  # close() closed the idle connection


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (  # chunked, the chunks written apart
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", b"0\r\n\r\n"],
            b"hello",
        ),
        ([whole(gzip.compress(b"zipped"), "Content-Encoding: gzip\r\n")], b"zipped"),
        ([b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"], b"until the end"),
    ],
    ids=["chunked", "gzip", "delimited-by-close"],
)
async def test_chunked_compressed_and_close_delimited_answers_are_read_whole(
    serve: Callable[[Answerer], Awaitable[RawUpstream]], answer: list[bytes], expected: bytes
) -> None:
    async def write(_: asyncio.StreamReader, writer: asyncio.StreamWriter, __: bytes) -> bool:
        for piece in answer:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        return b"Content-Length" in answer[0] or b"chunked" in answer[0]

    upstream = await serve(write)
    client = pool()

    assert await client.post(upstream.target, BODY, HEADERS) == (200, expected)
    assert await client.post(upstream.target, BODY, HEADERS) == (200, expected)
    await client.close()


async def test_an_answer_cut_short_fails_and_its_connection_is_never_reused(
    serve: Callable[[Answerer], Awaitable[RawUpstream]],
) -> None:
    async def cut_short(_: asyncio.StreamReader, writer: asyncio.StreamWriter, __: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
        await writer.drain()
        return False

    upstream = await serve(in_turn(cut_short, ok))
    client = pool()

    with pytest.raises(UpstreamClosed, match="dropped the connection"):
        await client.post(upstream.target, BODY, HEADERS)
    status, _ = await client.post(upstream.target, BODY, HEADERS)
    await client.close()

    assert status == 200
    assert upstream.connections == 2


async def test_an_idle_connection_the_upstream_closed_is_not_used_again(
    serve: Callable[[Answerer], Awaitable[RawUpstream]],
) -> None:
    async def answer_then_close(r: asyncio.StreamReader, w: asyncio.StreamWriter, b: bytes) -> bool:
        await ok(r, w, b)
        return False  # the upstream's idle timeout, at once

    upstream = await serve(answer_then_close)
    client = pool()

    first = await client.post(upstream.target, BODY, HEADERS)
    await asyncio.sleep(0.1)  # its close arrives
    second = await client.post(upstream.target, BODY, HEADERS)
    await client.close()

    assert first[0] == second[0] == 200
    assert upstream.connections == 2


async def test_a_cancelled_call_closes_its_connection_so_the_upstream_stops(
    serve: Callable[[Answerer], Awaitable[RawUpstream]],
) -> None:
    async def think(reader: asyncio.StreamReader, _: asyncio.StreamWriter, __: bytes) -> bool:
        await reader.read(1)  # returns b"" once the caller closes
        upstream.closed_by_client += 1
        return False

    upstream = await serve(think)
    client = pool()
    call = asyncio.create_task(client.post(upstream.target, BODY, HEADERS))
    await asyncio.sleep(0.1)

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await until_closed(upstream)


async def test_timeout_s_bounds_the_answer_and_closes_the_connection(
    serve: Callable[[Answerer], Awaitable[RawUpstream]],
) -> None:
    async def never(reader: asyncio.StreamReader, _: asyncio.StreamWriter, __: bytes) -> bool:
        await reader.read(1)
        upstream.closed_by_client += 1
        return False

    upstream = await serve(never)
    client = pool(timeout_s=0.2)

    with pytest.raises(TimeoutError):
        await client.post(upstream.target, BODY, HEADERS)
    await until_closed(upstream)


async def test_idle_connections_close_after_keepalive_s_and_0_keeps_none(
    serve: Callable[[Answerer], Awaitable[RawUpstream]],
) -> None:
    upstream = await serve(ok)
    kept = pool(keepalive_s=0.2)
    await kept.post(upstream.target, BODY, HEADERS)
    await until_closed(upstream)  # after ~0.2 s idle, with no other call
    await kept.post(upstream.target, BODY, HEADERS)
    assert upstream.connections == 2
    await kept.close()

    single = await serve(ok)
    none_kept = pool(keepalive_s=0)
    for _ in range(3):
        await none_kept.post(single.target, BODY, HEADERS)
    assert single.connections == 3


async def test_connection_close_in_an_answer_is_honoured(
    serve: Callable[[Answerer], Awaitable[RawUpstream]],
) -> None:
    async def closing(_: asyncio.StreamReader, writer: asyncio.StreamWriter, __: bytes) -> bool:
        writer.write(whole(b"{}", "Connection: close\r\n"))
        await writer.drain()
        return True  # keeps reading: only the client's close ends it

    upstream = await serve(closing)
    client = pool()
    await client.post(upstream.target, BODY, HEADERS)
    await until_closed(upstream)
    await client.post(upstream.target, BODY, HEADERS)

    assert upstream.connections == 2


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"SMTP ready\r\n\r\n", "not valid HTTP"),
        (whole(b"not gzip", "Content-Encoding: gzip\r\n"), "compressed answer is corrupt"),
        (whole(b"x", "Content-Encoding: br\r\n"), "content-encoding 'br' is not supported"),
    ],
    ids=["not-http", "corrupt-gzip", "brotli"],
)
async def test_what_cannot_be_read_is_a_clear_error(
    serve: Callable[[Answerer], Awaitable[RawUpstream]], answer: bytes, message: str
) -> None:
    async def write(_: asyncio.StreamReader, writer: asyncio.StreamWriter, __: bytes) -> bool:
        writer.write(answer)
        await writer.drain()
        return True

    upstream = await serve(write)
    client = pool()

    with pytest.raises(BadAnswer, match=message):
        await client.post(upstream.target, BODY, HEADERS)
    await client.close()


async def test_a_header_that_would_split_the_request_is_refused_before_connecting(
    serve: Callable[[Answerer], Awaitable[RawUpstream]],
) -> None:
    upstream = await serve(ok)
    client = pool()

    with pytest.raises(PlainHTTPError, match="X-Team"):
        await client.post(upstream.target, BODY, {"X-Team": "a\r\nX-Injected: 1"})
    assert upstream.connections == 0


async def test_a_refused_connection_names_the_reason() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    target = plain_target(f"http://127.0.0.1:{port}/v1")
    assert target is not None

    with pytest.raises(CannotConnect, match=r"^Connection refused$"):
        await pool().post(target, BODY, HEADERS)


def test_only_plain_http_urls_have_a_target() -> None:
    assert plain_target("https://api.openai.com/v1/chat/completions") is None
    assert plain_target("http://vllm:8000/v1/chat/completions?api-version=1") == Target(
        "vllm", 8000, "/v1/chat/completions?api-version=1", "vllm:8000"
    )
    assert plain_target("http://[::1]/v1") == Target("::1", 80, "/v1", "[::1]")


async def test_a_close_after_a_bodiless_answer_does_not_repeat_that_answer(
    serve: Callable[[Answerer], Awaitable[RawUpstream]],
) -> None:
    """A 204 has no length; the next request's connection closing is a failure, not a 204."""

    async def no_content(_: asyncio.StreamReader, writer: asyncio.StreamWriter, __: bytes) -> bool:
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        return True

    upstream = await serve(in_turn(no_content, drop))
    client = pool()

    assert await client.post(upstream.target, BODY, HEADERS) == (204, b"")
    with pytest.raises(UpstreamClosed):
        await client.post(upstream.target, BODY, HEADERS)
    await client.close()
