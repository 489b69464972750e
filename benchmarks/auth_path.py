"""What the failed-authentication throttle costs a valid key on ``/v1``: ns per call, side by side.

Three ways to authenticate the same request (a valid key already in the
principal cache, the hot path), timed in rounds in one process, each round in
another order:

* ``before``: the authentication step as it was before the throttle (cache lookup only);
* ``throttle``: ``modelcycle.api.deps.inference_principal`` as shipped, nothing blocked;
* ``blocking``: the same while 1,000 *other* addresses are blocked, so the
  caller's address is worked out and looked up on every call.

    .venv/bin/python benchmarks/auth_path.py [--calls 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request

from modelcycle.access import Principal
from modelcycle.access.throttle import AuthThrottle
from modelcycle.api import create_app
from modelcycle.api.deps import _bearer_token, inference_principal
from modelcycle.errors import AuthenticationError
from modelcycle.services import Services
from modelcycle.testing import make_key, make_services, make_settings
from modelcycle.types import Role


async def before(request: Request) -> Principal:
    """``inference_principal`` as it was before the throttle (hot path only)."""
    token = _bearer_token(request)
    if not token:
        raise AuthenticationError("missing API key")
    services: Services = request.app.state.services
    cached = services.access.cached_principal(token)
    if cached is not None:
        return cached
    raise AssertionError("the benchmark key must be cached")


async def per_call_ns(
    step: Callable[[Request], Awaitable[Principal]], request: Request, n: int
) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        await step(request)
    return (time.perf_counter_ns() - start) / n


async def main(calls: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        services = make_services(make_settings(Path(home), auth_cache_ttl_s=300))
        app = create_app(services)
        key = make_key(services, Role.APP)
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/v1/models",
            "headers": [(b"authorization", f"Bearer {key.key}".encode())],
            "client": ("2001:db8::7", 50000),
            "app": app,
        }
        request = Request(scope)
        await inference_principal(request)  # into the principal cache
        quiet = services.access.throttle
        logging.getLogger("modelcycle.access.throttle").setLevel(logging.ERROR)
        busy = AuthThrottle(1, 3600)
        for n in range(1000):
            busy.failed(f"10.9.{n >> 8}.{n & 255}")
        paths = {
            "before": (before, quiet),
            "throttle": (inference_principal, quiet),
            "blocking": (inference_principal, busy),
        }
        results: dict[str, list[float]] = {name: [] for name in paths}
        order = list(paths)
        for round_ in range(rounds):
            for name in order[round_ % 3 :] + order[: round_ % 3]:  # no path always first
                step, services.access.throttle = paths[name]
                results[name].append(await per_call_ns(step, request, calls))
        services.close()
    base = statistics.median(results["before"])
    print(f"{'path':<10} {'ns/call (median)':>17} {'ratio to before':>16}")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:<10} {median:>17.0f} {median / base:>16.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds))
