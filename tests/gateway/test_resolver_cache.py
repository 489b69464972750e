"""The resolver's cache under load: one database read per key at a time, refreshed ahead.

A fake ``Deployments`` counts reads and can hold them (a slow database); the
clock is the test's, so expiry and the refresh window are exact.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

import pytest

from modelcycle.deploy import Deployments
from modelcycle.gateway.cache import DeploymentNotFound, Resolver
from modelcycle.store import Store

TTL_S = 2.0


class FakeDeployments:
    """``lookup`` answers the value a name had when the read began, and counts its calls."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {"chat": "chat v1"}
        self.reads = 0
        self.gate = threading.Event()
        self.gate.set()

    def lookup(self, project_id: int, name: str) -> Any:
        self.reads += 1
        value = self.values.get(name)
        assert self.gate.wait(10), "the test never opened the gate"
        return value


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def resolver(fake: FakeDeployments, clock: Clock) -> Resolver:
    return Resolver(cast(Deployments, fake), cast(Store, None), ttl_s=TTL_S, clock=clock)


async def settle() -> None:
    """Let background reads (worker threads) finish and their results land."""
    for _ in range(50):
        await asyncio.sleep(0.01)


async def test_concurrent_misses_read_the_database_once() -> None:
    fake, clock = FakeDeployments(), Clock()
    cache = resolver(fake, clock)
    fake.gate.clear()  # a slow database: every request arrives while the read runs
    waiting = [asyncio.ensure_future(cache.deployment(1, "chat")) for _ in range(16)]
    await asyncio.sleep(0.05)
    fake.gate.set()
    answers = await asyncio.gather(*waiting)
    assert answers == ["chat v1"] * 16
    assert fake.reads == 1


async def test_an_entry_used_near_its_end_is_read_again_in_the_background() -> None:
    fake, clock = FakeDeployments(), Clock()
    cache = resolver(fake, clock)
    assert await cache.deployment(1, "chat") == "chat v1"
    fake.values["chat"] = "chat v2"  # changed by another process: no event here
    clock.now += TTL_S * 0.5
    assert await cache.deployment(1, "chat") == "chat v1"  # fresh: no read
    assert fake.reads == 1

    fake.gate.clear()  # the refresh will be slow: the request must not wait for it
    clock.now += TTL_S * 0.3  # within the last quarter of the entry's life
    answer = await asyncio.wait_for(cache.deployment(1, "chat"), timeout=1)
    assert answer == "chat v1"
    for _ in range(5):  # busy traffic while the refresh runs: one read, no waiting
        assert await asyncio.wait_for(cache.deployment(1, "chat"), timeout=1) == "chat v1"
    fake.gate.set()
    await settle()
    assert fake.reads == 2
    clock.now += TTL_S * 0.5  # past the first entry's end, within the refreshed one's
    assert await cache.deployment(1, "chat") == "chat v2"
    assert fake.reads == 2


async def test_nothing_is_served_after_its_ttl() -> None:
    fake, clock = FakeDeployments(), Clock()
    cache = resolver(fake, clock)
    assert await cache.deployment(1, "chat") == "chat v1"
    fake.values["chat"] = "chat v2"
    clock.now += TTL_S + 0.01  # expired without being used near its end
    assert await cache.deployment(1, "chat") == "chat v2"
    assert fake.reads == 2


async def test_a_read_begun_before_an_invalidation_is_not_kept() -> None:
    fake, clock = FakeDeployments(), Clock()
    cache = resolver(fake, clock)
    fake.gate.clear()
    before = asyncio.ensure_future(cache.deployment(1, "chat"))
    await asyncio.sleep(0.05)
    fake.values["chat"] = "chat v2"
    cache.invalidate()  # a DeploymentChanged event of this process
    fake.gate.set()
    assert await before == "chat v1"  # the request that began before the change
    assert await cache.deployment(1, "chat") == "chat v2"
    assert fake.reads == 2


async def test_an_unknown_deployment_is_a_404_and_a_failed_read_is_not_cached() -> None:
    fake, clock = FakeDeployments(), Clock()
    cache = resolver(fake, clock)
    with pytest.raises(DeploymentNotFound):
        await cache.deployment(1, "missing")

    failing = FakeDeployments()

    def broken(project_id: int, name: str) -> Any:
        failing.reads += 1
        raise RuntimeError("database unavailable")

    failing.lookup = broken  # type: ignore[method-assign]
    cache = resolver(failing, clock)
    with pytest.raises(RuntimeError, match="database unavailable"):
        await cache.deployment(1, "chat")
    with pytest.raises(RuntimeError, match="database unavailable"):
        await cache.deployment(1, "chat")
    assert failing.reads == 2  # each request tried again: no error was cached


async def test_a_cancelled_waiter_does_not_cancel_the_read_the_others_await() -> None:
    fake, clock = FakeDeployments(), Clock()
    cache = resolver(fake, clock)
    fake.gate.clear()
    first = asyncio.ensure_future(cache.deployment(1, "chat"))
    second = asyncio.ensure_future(cache.deployment(1, "chat"))
    await asyncio.sleep(0.05)
    first.cancel()  # its client went away
    fake.gate.set()
    assert await second == "chat v1"
    assert fake.reads == 1
