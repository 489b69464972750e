"""Kind ``openai``: requests/s through the gateway vs calling the upstream directly.

One run, side by side: the zero-latency mock upstream (``mock_upstream.py``)
called directly, and the same upstream behind ``modelcycle up`` (a deployment
with one ``openai`` version, an ``app`` key, authentication, routing and event
emission on), at concurrency 1 and 16, whole answers and streams. wrk drives
each target in interleaved rounds; medians are compared. Then, in process, the
backend alone (``OpenAICompatBackend.chat``: body, credential, pooled call,
parsing) against a bare pooled ``aiohttp`` post of the same body. This only
reports: the gateway's overhead goals are checked by ``gateway_overhead.py``
against the bare pass-through.

    .venv/bin/python benchmarks/openai_backend.py [--duration 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
import harness
import orjson
from harness import WrkResult

from modelcycle.backends import GenerationParams, Message
from modelcycle.backends.openai_compat import OpenAICompatBackend

CALLS = 2000


async def backend_alone(url: str, rounds: int) -> tuple[float, float]:
    """Median microseconds per call: the backend, and a bare aiohttp post, interleaved."""
    backend = OpenAICompatBackend(f"{url}/v1", {"model": "bench"})
    messages, params = [Message("user", "Say hello")], GenerationParams(max_tokens=16)
    body = orjson.dumps(
        {"model": "bench", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}
    )
    headers = {"Content-Type": "application/json"}
    ours: list[float] = []
    bare: list[float] = []
    async with aiohttp.ClientSession() as session:
        for round_ in range(rounds + 1):  # the first round warms both up
            started = time.perf_counter()
            for _ in range(CALLS):
                await backend.chat(messages, params)
            middle = time.perf_counter()
            for _ in range(CALLS):
                async with session.post(
                    f"{url}/v1/chat/completions", data=body, headers=headers
                ) as r:
                    orjson.loads(await r.read())
            ended = time.perf_counter()
            if round_:
                ours.append((middle - started) / CALLS * 1e6)
                bare.append((ended - middle) / CALLS * 1e6)
    await backend.close()
    return statistics.median(ours), statistics.median(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per target")
    args = parser.parse_args()

    results: dict[tuple[str, str, int], list[WrkResult]] = {}
    with harness.servers() as stack:
        upstream = harness.start_upstream(stack)
        gateway = harness.start_gateway(stack, upstream, backend="openai")
        targets = {
            "direct": (f"{upstream.url}/v1/chat/completions", upstream.pid),
            "gateway": (f"{gateway.url}/v1/chat/completions", gateway.pid),
        }
        for url, _ in targets.values():
            harness.check_answers(url, gateway.key)
        scripts = {
            "whole": harness.lua_script(gateway.key),
            "stream": harness.lua_script(gateway.key, harness.STREAM_BODY),
        }
        ours, bare = asyncio.run(backend_alone(upstream.url, args.rounds))
        for kind, script in scripts.items():
            for connections in (1, 16):
                for url, _ in targets.values():  # warm-up: connection pools
                    harness.wrk(url, script, connections, 1)
                for _ in range(args.rounds):
                    for name, (url, pid) in targets.items():
                        found = harness.wrk(url, script, connections, args.duration, pid)
                        results.setdefault((kind, name, connections), []).append(found)
            script.unlink()

    summary = {key: harness.median_of(runs) for key, runs in results.items()}
    head = ("answer", "target", "c", "req/s", "p50 ms", "p99 ms", "errors")
    print("{:<7} {:<8} {:>3} {:>9} {:>8} {:>8} {:>7}".format(*head))
    for (kind, name, connections), found in sorted(summary.items()):
        errors = found.non_2xx + found.socket_errors
        print(
            f"{kind:<7} {name:<8} {connections:>3} {found.rps:>9.0f} {found.p50_ms:>8.3f} "
            f"{found.p99_ms:>8.3f} {errors:>7}"
        )
    for kind in ("whole", "stream"):
        for connections in (1, 16):
            through = summary[(kind, "gateway", connections)]
            direct = summary[(kind, "direct", connections)]
            print(
                f"{kind} c={connections}: gateway/direct req/s {through.rps / direct.rps:.3f}, "
                f"added p50 {through.p50_ms - direct.p50_ms:+.3f} ms"
            )
    print(
        f"backend alone: {ours:.0f} us per call vs bare aiohttp {bare:.0f} us "
        f"(ratio {bare / ours:.2f}, added {ours - bare:+.0f} us)"
    )


if __name__ == "__main__":
    main()
