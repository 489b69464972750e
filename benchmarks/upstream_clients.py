"""Upstream HTTP clients of kind ``openai``: aiohttp, pyqwest, plain_http, side by side.

The gateway's Python runs on one thread, so what bounds its requests/s is the CPU
that thread spends per request. This benchmark POSTs the gateway's whole-answer
request to the mock upstream (16 concurrent callers, one event loop with uvloop)
through each client in interleaved rounds and prints, per request, the CPU time
of the event loop's thread, of the whole process (pyqwest's tokio threads
included) and the requests/s. ``plain_http`` serves ``http://`` upstreams, pyqwest
TLS and proxied ones; aiohttp was the client before both.

    .venv/bin/python benchmarks/upstream_clients.py [--requests 3000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import harness
import orjson
import pyqwest
import uvloop

from modelcycle.backends.openai_params import parse_params
from modelcycle.backends.plain_http import PlainHTTPPool, plain_target

BODY = orjson.dumps(orjson.loads(harness.CHAT_BODY))
HEADERS = {"Content-Type": "application/json", "User-Agent": "modelcycle-bench"}
CALLERS = 16


@dataclass(frozen=True)
class Round:
    loop_thread_us: float
    process_us: float
    rps: float


async def drive(call: Callable[[], Awaitable[bytes]], requests: int) -> Round:
    """``requests`` calls from ``CALLERS`` concurrent callers, after a warm-up."""

    async def caller(count: int) -> None:
        for _ in range(count):
            assert await call()

    await asyncio.gather(*(caller(30) for _ in range(CALLERS)))
    thread, process, wall = time.thread_time(), time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(requests // CALLERS) for _ in range(CALLERS)))
    done = requests // CALLERS * CALLERS
    return Round(
        (time.thread_time() - thread) / done * 1e6,
        (time.process_time() - process) / done * 1e6,
        done / (time.perf_counter() - wall),
    )


async def with_aiohttp(url: str, requests: int) -> Round:
    """As the gateway called upstreams before: a pooled session, a per-read timeout."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def call() -> bytes:
            async with session.post(
                url, data=BODY, headers=HEADERS, allow_redirects=False
            ) as answer:
                assert answer.status == 200
                return await answer.read()

        return await drive(call, requests)


async def with_pyqwest(url: str, requests: int) -> Round:
    """As ``modelcycle.backends.openai_http`` calls upstreams now."""
    transport = pyqwest.HTTPTransport(
        connect_timeout=10, read_timeout=60, follow_redirects=False, enable_otel=False
    )
    client = pyqwest.Client(transport)

    async def call() -> bytes:
        answer = await client.post(url, headers=HEADERS, content=BODY)
        assert answer.status == 200
        return answer.content

    try:
        return await drive(call, requests)
    finally:
        await transport.aclose()


async def with_plain_http(url: str, requests: int) -> Round:
    """As ``modelcycle.backends.plain_http`` calls ``http://`` upstreams now."""
    pool = PlainHTTPPool(parse_params({}))
    target = plain_target(url)
    assert target is not None

    async def call() -> bytes:
        status, content = await pool.post(target, BODY, HEADERS)
        assert status == 200
        return content

    try:
        return await drive(call, requests)
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per client")
    args = parser.parse_args()
    clients = {"aiohttp": with_aiohttp, "pyqwest": with_pyqwest, "plain_http": with_plain_http}
    rounds: dict[str, list[Round]] = {name: [] for name in clients}
    with harness.servers() as stack:
        url = f"{harness.start_upstream(stack).url}/v1/chat/completions"
        for _ in range(args.rounds):
            for name, run in clients.items():
                rounds[name].append(uvloop.run(run(url, args.requests)))
    print(f"{'client':10} {'loop thread µs/req':>19} {'process µs/req':>15} {'req/s':>8}")
    medians, processes = {}, {}
    for name, found in rounds.items():
        medians[name] = statistics.median(r.loop_thread_us for r in found)
        process = processes[name] = statistics.median(r.process_us for r in found)
        rps = statistics.median(r.rps for r in found)
        print(f"{name:10} {medians[name]:19.1f} {process:15.1f} {rps:8.0f}")
    plain_vs_pyqwest = processes["plain_http"] / processes["pyqwest"]
    for name in ("pyqwest", "plain_http"):
        ratio = medians[name] / medians["aiohttp"]
        print(f"{name}/aiohttp CPU of the event loop's thread per request: {ratio:.2f}")
    print(f"plain_http/pyqwest CPU of the whole process per request: {plain_vs_pyqwest:.2f}")


if __name__ == "__main__":
    main()
