"""Limits and cache shared by two gateway instances through a real Redis, and Redis failures.

Uses the Redis server at ``MODELCYCLE_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``) under a key prefix of its own, deleted afterwards;
skipped with the reason where none answers. The failure tests start their own
``redis-server`` (skipped where the binary is missing) so that they can stop it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelcycle.api import create_app
from modelcycle.deploy import CachePolicy, DeploymentLimits, DeploymentSpec, Route
from modelcycle.gateway.limits import Limits
from modelcycle.services import Services
from modelcycle.testing import admin_of, make_key, make_services, make_settings, register
from modelcycle.types import Role

redis = pytest.importorskip("redis", reason="redis-py is not installed (pip install -e '.[dev]')")

pytestmark = pytest.mark.e2e

REDIS_URL = os.environ.get("MODELCYCLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@cache
def redis_unavailable() -> str | None:
    """Why the Redis tests cannot run here, or ``None`` when they can."""
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return f"Redis not reachable at {REDIS_URL}: {type(exc).__name__}"
    return None


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Gateway:
    """One gateway instance: its own services, limits and Redis connections."""

    services: Services
    client: httpx.AsyncClient

    async def chat(self, content: str = "hi", **extra: Any) -> httpx.Response:
        return await self.client.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": content}], **extra},
        )

    @property
    def limits(self) -> Limits:
        return self.services.gateway.limits


async def start(tmp_path: Path, clock: Clock, key: str | None = None, **settings: Any) -> Gateway:
    """A gateway over the database under ``tmp_path`` (shared by every instance)."""
    services = make_services(make_settings(tmp_path / "home", **settings))
    services.gateway.limits = Limits.from_settings(services.settings, clock=clock)
    transport = httpx.ASGITransport(app=create_app(services))
    key = key or make_key(services, Role.APP).key
    client = httpx.AsyncClient(
        transport=transport,
        base_url="http://gateway.test",
        headers={"Authorization": f"Bearer {key}"},
    )
    return Gateway(services, client)


async def stop(*gateways: Gateway) -> None:
    for gateway in gateways:
        await gateway.client.aclose()
        await gateway.services.gateway.aclose()
        gateway.services.close()


def deploy(gateway: Gateway, **extra: Any) -> None:
    admin = admin_of(gateway.services).principal
    register(gateway.services, admin, "bot", params={})
    spec = DeploymentSpec(name="chat", routes=[Route(target="bot@1", weight=100)], **extra)
    gateway.services.deployments.create(admin, spec)


@pytest.fixture
def prefix() -> Iterator[str]:
    reason = redis_unavailable()
    if reason:
        pytest.skip(reason)
    name = f"mctest:{uuid.uuid4().hex[:12]}:"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{name}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
async def pair(tmp_path: Path, prefix: str) -> AsyncIterator[tuple[Gateway, Gateway, Clock]]:
    clock = Clock()
    first = await start(tmp_path, clock, redis_url=REDIS_URL, redis_key_prefix=prefix)
    key = make_key(first.services, Role.APP).key
    first.client.headers["Authorization"] = f"Bearer {key}"
    second = await start(tmp_path, clock, key, redis_url=REDIS_URL, redis_key_prefix=prefix)
    yield first, second, clock
    await stop(first, second)


async def test_two_gateways_share_one_request_budget(
    pair: tuple[Gateway, Gateway, Clock],
) -> None:
    a, b, clock = pair
    deploy(a, limits=DeploymentLimits(rpm=3))

    answers = [await a.chat(), await b.chat(), await a.chat(), await b.chat()]

    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in answers[:3]] == ["2", "1", "0"]
    assert answers[3].headers["retry-after"] == "20"
    assert answers[3].json()["error"]["type"] == "rate_limit_error"
    assert (await a.chat()).status_code == 429
    clock.now += 20
    assert (await b.chat()).status_code == 200
    assert (await a.chat()).status_code == 429


async def test_token_usage_reconciled_by_one_gateway_counts_on_the_other(
    pair: tuple[Gateway, Gateway, Clock],
) -> None:
    a, b, _ = pair
    deploy(a, limits=DeploymentLimits(key_tpm=100))
    words = "abcd " * 7 + "abcd"  # estimated 11 tokens, really 8 + 8 = 16

    first = await a.chat(words)
    assert first.headers["x-ratelimit-remaining-tokens"] == "89"
    # The first request's reconciliation rides along with the next round trip.
    second = await a.chat(words)
    assert second.headers["x-ratelimit-remaining-tokens"] == str(100 - 16 - 11)
    await a.limits.drain()  # the second's is sent on its own
    third = await b.chat(words)
    assert third.headers["x-ratelimit-remaining-tokens"] == str(100 - 16 - 16 - 11)


async def test_an_answer_cached_by_one_gateway_is_a_hit_on_the_other(
    pair: tuple[Gateway, Gateway, Clock],
) -> None:
    a, b, clock = pair
    deploy(a, cache=CachePolicy(ttl_s=30))

    miss = await a.chat("same question", temperature=0)
    assert (await a.chat("same question", temperature=0)).headers["x-modelcycle-cache"] == "hit"
    await a.limits.drain()  # writes ride with a's next round trip, or go within 50 ms
    hit = await b.chat("same question", temperature=0)

    assert miss.headers["x-modelcycle-cache"] == "miss"
    assert hit.headers["x-modelcycle-cache"] == "hit"
    assert hit.json()["choices"][0]["message"]["content"] == "same question"
    served_by_b = b.services.gateway.backends.get("mock", "mock://echo", {})
    assert served_by_b.calls == []  # type: ignore[attr-defined]
    clock.now += 31
    assert (await b.chat("same question", temperature=0)).headers["x-modelcycle-cache"] == "miss"


# -- Redis failures ----------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.mark.parametrize(
    ("mode", "statuses"),
    [("local", [200, 200, 429]), ("open", [200, 200, 200]), ("closed", [503, 503, 503])],
)
async def test_with_redis_unreachable_limits_follow_the_setting_and_never_500(
    tmp_path: Path, mode: str, statuses: list[int]
) -> None:
    gateway = await start(
        tmp_path, Clock(), redis_url=closed_port_url(), limits_on_redis_error=mode
    )
    deploy(gateway, limits=DeploymentLimits(rpm=2), cache=CachePolicy(ttl_s=60))
    try:
        answers = [await gateway.chat(temperature=0) for _ in range(3)]
    finally:
        await stop(gateway)
    assert [r.status_code for r in answers] == statuses
    if mode == "closed":
        error = answers[0].json()["error"]
        assert error["code"] == "rate_limiter_unavailable"
        assert answers[0].headers["retry-after"] == "1"
    else:  # the cache is down too: every answer is a miss, none an error
        assert {r.headers["x-modelcycle-cache"] for r in answers if r.status_code == 200} == {
            "miss"
        }


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A redis-server of this test's own (so that it can be stopped), and its restarter."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(tmp_path)]
    url = f"redis://127.0.0.1:{port}/0"
    processes: list[subprocess.Popen[bytes]] = []

    def launch() -> None:
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        deadline = time.monotonic() + 5
        while True:
            try:
                redis.Redis.from_url(url, socket_connect_timeout=0.2).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def halt() -> None:
        processes[-1].terminate()
        processes[-1].wait(timeout=5)

    launch()
    yield url, (launch, halt)
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=5)


async def test_redis_going_away_and_coming_back(tmp_path: Path, own_redis: tuple[str, Any]) -> None:
    url, (launch, halt) = own_redis
    gateway = await start(tmp_path, Clock(), redis_url=url, limits_on_redis_error="local")
    deploy(gateway, limits=DeploymentLimits(rpm=100))
    try:
        assert (await gateway.chat()).headers["x-ratelimit-remaining-requests"] == "99"
        halt()
        during = await gateway.chat()  # Redis is gone: this process's own count
        assert during.status_code == 200
        assert during.headers["x-ratelimit-remaining-requests"] == "99"
        launch()  # a fresh, empty Redis
        time.sleep(1.1)  # the outage back-off of the connection (see shared_state.py)
        after = await gateway.chat()
        assert after.status_code == 200
        assert after.headers["x-ratelimit-remaining-requests"] == "99"
        assert (await gateway.chat()).headers["x-ratelimit-remaining-requests"] == "98"
    finally:
        await stop(gateway)


async def test_limits_cache_reads_and_writes_share_one_round_trip_per_request(
    tmp_path: Path, own_redis: tuple[str, Any]
) -> None:
    url, _ = own_redis
    clock = Clock()
    a = await start(tmp_path, clock, redis_url=url)
    b = await start(tmp_path, clock, a.client.headers["Authorization"][7:], redis_url=url)
    deploy(a, limits=DeploymentLimits(rpm=1000, key_tpm=100_000), cache=CachePolicy(ttl_s=60))
    stats = redis.Redis.from_url(url)
    stats.config_resetstat()
    try:
        first = await a.chat("what is 2 + 2?", temperature=0)
        other = await a.chat("another question", temperature=0)  # carries the first's write
        again = await b.chat("what is 2 + 2?", temperature=0)  # reads it in its own trip
        calls = stats.info("commandstats")
    finally:
        await stop(a, b)
        stats.close()
    assert [r.headers["x-modelcycle-cache"] for r in (first, other, again)] == [
        "miss",
        "miss",
        "hit",
    ]
    assert again.headers["x-ratelimit-remaining-requests"] == "997"
    # Each request: one script call (rate limits, the writes pending for its project and
    # the cache read); at most one more if the 50 ms flush timer fired in between.
    evalsha = calls["cmdstat_evalsha"]
    assert 3 <= evalsha["calls"] - evalsha["failed_calls"] <= 4  # failed: NOSCRIPT, once
    assert "cmdstat_eval" not in calls


async def test_concurrent_admissions_share_round_trips_and_the_budget_stays_exact(
    tmp_path: Path, own_redis: tuple[str, Any]
) -> None:
    url, _ = own_redis
    gateway = await start(tmp_path, Clock(), redis_url=url)
    deploy(gateway, limits=DeploymentLimits(rpm=10))
    stats = redis.Redis.from_url(url)
    stats.config_resetstat()
    try:
        answers = await asyncio.gather(*(gateway.chat(f"n{n}") for n in range(16)))
        calls = stats.info("commandstats")["cmdstat_evalsha"]
    finally:
        await stop(gateway)
        stats.close()
    served = [r for r in answers if r.status_code == 200]
    assert len(served) == 10
    assert {r.status_code for r in answers} == {200, 429}
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in served)
    assert remaining == list(range(10))  # each admission saw the one before it
    # Group commit: admissions that arrive while a call is in flight go in the next one.
    assert calls["calls"] - calls["failed_calls"] < 16
