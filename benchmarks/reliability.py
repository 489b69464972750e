"""Reliability: an upstream failing 30% of requests, a fallback, 2,000 client requests.

Issue 3 asks, with an upstream that fails 30% of requests (500 answers, hangs,
dropped connections, answers cut mid-way) and a fallback configured:

* at least 99.9% of 2,000 client requests succeed;
* no request outlives its timeout (each attempt is cut at the deployment's
  ``timeout_s``; a request makes at most two, the route and the fallback);
* a stream that breaks after it began ends with an error event, never as a
  silent success.

The deployment routes to the failing mock upstream (``--fail-rate 0.3``) with a
healthy one as its fallback. Streamed requests come first: those the failing
upstream cuts after their first event must end with an error event, every other
one must be whole. Then 2,000 whole answers are requested, 16 at a time. The
circuit breaker is off, so that every request meets the failing upstream first
(``--breaker`` keeps it on: it then takes that upstream out of routing).

    .venv/bin/python benchmarks/reliability.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import harness
import httpx

from modelcycle.deploy import BreakerPolicy


async def whole(http: httpx.AsyncClient, n: int) -> tuple[bool, float]:
    started = time.perf_counter()
    body = json.loads(harness.CHAT_BODY)
    body["messages"][0]["content"] = f"request {n}"
    try:
        answer = await http.post("/v1/chat/completions", json=body)
        ok = answer.status_code == 200 and bool(answer.json()["choices"][0]["message"]["content"])
    except httpx.HTTPError:
        ok = False
    return ok, time.perf_counter() - started


async def streamed(http: httpx.AsyncClient) -> str:
    """``done`` (whole, ``[DONE]`` last), ``error`` (an error event last) or ``silent``."""
    body = json.loads(harness.STREAM_BODY)
    async with http.stream("POST", "/v1/chat/completions", json=body) as answer:
        if answer.status_code != 200:
            return "refused"
        events = [line async for line in answer.aiter_lines() if line.startswith("data: ")]
    if events and events[-1] == "data: [DONE]":
        text = "".join(
            (json.loads(e[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
            for e in events[:-1]
        )
        return "done" if text == harness.MOCK_REPLY else "silent"
    if events and '"error"' in events[-1]:
        return "error"
    return "silent"


async def drive(url: str, key: str, requests: int, streams: int) -> dict[str, object]:
    slots = asyncio.Semaphore(16)

    async def limited(n: int) -> tuple[bool, float]:
        async with slots:
            return await whole(http, n)

    async def limited_stream() -> str:
        async with slots:
            return await streamed(http)

    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    ) as http:
        # Streams first: once the breaker takes the failing upstream out, nothing breaks.
        outcomes = await asyncio.gather(*(limited_stream() for _ in range(streams)))
        results = await asyncio.gather(*(limited(n) for n in range(requests)))
    return {
        "ok": sum(ok for ok, _ in results),
        "max_latency_s": max(latency for _, latency in results),
        "streams": {kind: outcomes.count(kind) for kind in sorted(set(outcomes))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=400)
    parser.add_argument("--fail-rate", type=float, default=0.3)
    parser.add_argument("--timeout", type=float, default=1.0, help="the deployment's timeout_s")
    parser.add_argument(
        "--breaker",
        action="store_true",
        help="keep the circuit breaker on (it soon takes the failing upstream out of routing, "
        "so fewer requests meet a failure); off by default: every request tries it first",
    )
    args = parser.parse_args()
    if not harness.openai_backend_installed():
        raise SystemExit("needs the openai backend (an HTTP upstream that can fail for real)")

    with harness.servers() as stack:
        failing = harness.start_upstream(stack, "--fail-rate", str(args.fail_rate))
        healthy = harness.start_upstream(stack)
        gateway = harness.start_gateway(
            stack,
            failing,
            backend="openai",
            fallback=healthy,
            timeout_s=args.timeout,
            breaker=None if args.breaker else BreakerPolicy(failures=0),
        )
        started = time.perf_counter()
        found = asyncio.run(drive(gateway.url, gateway.key, args.requests, args.streams))
        elapsed = time.perf_counter() - started

    ok, max_latency, streams = found["ok"], found["max_latency_s"], found["streams"]
    assert isinstance(ok, int)
    assert isinstance(max_latency, float)
    assert isinstance(streams, dict)
    share = ok / args.requests
    bound = 2 * args.timeout + 1.0  # route + fallback, each cut at the timeout, plus slack
    breaker = "on" if args.breaker else "off: every request meets the failing upstream first"
    print(f"upstream failing {args.fail_rate:.0%} (500, hang, drop, cut), fallback healthy")
    print(f"circuit breaker {breaker}")
    print(f"whole answers: {ok}/{args.requests} succeeded = {share:.2%}  (goal >= 99.9%)")
    print(f"slowest whole answer: {max_latency:.2f} s  (bound {bound:.1f} s: 2 x timeout_s + 1)")
    print(f"streams: {streams}  (goal: no 'silent'; broken streams end with an error event)")
    print(f"{elapsed:.1f} s in all")
    verdict = share >= 0.999 and max_latency <= bound and streams.get("silent", 0) == 0
    print("PASS" if verdict else "FAIL")
    raise SystemExit(0 if verdict else 1)


if __name__ == "__main__":
    main()
