"""The cache of authenticated keys on ``/v1``: fast, and revocation still bites.

A revocation through this process applies at once; one made elsewhere (another
server process, simulated here by writing the database directly) applies
within ``auth_cache_ttl_s``. The management API never uses the cache.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update

from modelcycle.access.keys import hash_key
from modelcycle.access.principals import PrincipalCache
from modelcycle.services import Services
from modelcycle.store.tables import ApiKeyRow
from modelcycle.testing import KeyPair, make_key
from modelcycle.types import Role

ClientFactory = Callable[[str | None], httpx.AsyncClient]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def revoke_elsewhere(services: Services, key_id: int) -> None:
    """What another server process does: the row changes, this process is not told."""
    with services.store.write() as session:
        session.execute(
            update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(revoked_at=datetime.now(UTC))
        )


async def revoked_elsewhere_once_cached(
    services: Services, client_for: ClientFactory, clock: Clock
) -> tuple[KeyPair, httpx.AsyncClient]:
    """An app key cached on ``clock`` (5 s entries), then revoked by another process."""
    services.access.principals = PrincipalCache(5.0, clock=clock)
    app = make_key(services, Role.APP)
    client = client_for(app.key)
    assert (await client.get("/v1/models")).status_code == 200
    revoke_elsewhere(services, app.principal.key_id)
    return app, client


async def test_a_key_revoked_elsewhere_works_until_the_ttl_then_never(
    modelcycle_services: Services, client_for: ClientFactory
) -> None:
    clock = Clock()
    _, client = await revoked_elsewhere_once_cached(modelcycle_services, client_for, clock)
    clock.now += 4.9
    still = await client.get("/v1/models")
    clock.now += 0.2
    refused = await client.get("/v1/models")

    assert still.status_code == 200  # served from memory within the TTL
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]
    # The management API reads the database every time: refused already.
    assert (await client.get("/api/v1/whoami")).status_code == 401


async def test_a_key_revoked_through_this_process_is_refused_at_once(
    modelcycle_services: Services, modelcycle_admin: KeyPair, client_for: ClientFactory
) -> None:
    app = make_key(modelcycle_services, Role.APP)
    client = client_for(app.key)
    assert (await client.get("/v1/models")).status_code == 200

    modelcycle_services.access.revoke_key(modelcycle_admin.principal, app.principal.key_id)
    refused = await client.get("/v1/models")

    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]


async def test_with_a_ttl_of_zero_every_request_reads_the_database(
    modelcycle_services: Services, client_for: ClientFactory
) -> None:
    modelcycle_services.access.principals = PrincipalCache(0)
    app = make_key(modelcycle_services, Role.APP)
    client = client_for(app.key)
    assert (await client.get("/v1/models")).status_code == 200

    revoke_elsewhere(modelcycle_services, app.principal.key_id)

    assert (await client.get("/v1/models")).status_code == 401


def test_a_cached_key_whose_expiry_passes_is_a_miss(modelcycle_services: Services) -> None:
    app = make_key(modelcycle_services, Role.APP)
    clock = Clock()
    cache = PrincipalCache(60.0, clock=clock)
    soon = datetime.now(UTC) + timedelta(milliseconds=50)
    cache.put("d1", app.principal, soon, cache.generation)
    cache.put("d2", app.principal, None, cache.generation)

    assert cache.get("d1") == app.principal
    time.sleep(0.06)
    assert cache.get("d1") is None  # the key expired while cached
    assert cache.get("d2") == app.principal
    clock.now += 61
    assert cache.get("d2") is None  # the TTL passed


def test_an_answer_read_before_a_revocation_is_not_cached(modelcycle_services: Services) -> None:
    app = make_key(modelcycle_services, Role.APP)
    cache = PrincipalCache(60.0)
    generation = cache.generation  # a read begins...
    cache.forget_key(app.principal.key_id)  # ...the key is revoked meanwhile...
    cache.put("d", app.principal, None, generation)  # ...and the read ends
    assert cache.get("d") is None


async def test_wrong_keys_are_never_cached_and_the_key_itself_is_never_kept(
    modelcycle_services: Services, client_for: ClientFactory
) -> None:
    app = make_key(modelcycle_services, Role.APP)
    wrong = app.key[:-1] + ("A" if app.key[-1] != "A" else "B")
    cache = modelcycle_services.access.principals
    known = len(cache)

    assert (await client_for(wrong).get("/v1/models")).status_code == 401
    assert (await client_for(app.key).get("/v1/models")).status_code == 200
    assert (await client_for(wrong).get("/v1/models")).status_code == 401

    assert len(cache) == known  # the app key was cached when it was made; nothing else
    assert hash_key(app.key) in cache  # keyed by the SHA-256 digest...
    assert app.key not in cache  # ...never by the key itself
    assert hash_key(wrong) not in cache


class CountedReads:
    """Stands in for ``AccessService._authenticate``: counts reads and can hold them."""

    def __init__(self, read: Callable[[str], Any]) -> None:
        self.read, self.count = read, 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, raw_key: str) -> Any:
        self.count += 1
        assert self.gate.wait(10), "the test never opened the gate"
        return self.read(raw_key)


def counted(services: Services, clock: Clock) -> CountedReads:
    """A fresh cache on ``clock`` and counted database reads."""
    services.access.principals = PrincipalCache(5.0, clock=clock)
    reads = CountedReads(services.access._authenticate)
    services.access._authenticate = reads  # type: ignore[method-assign]
    return reads


async def settle(until: Callable[[], bool]) -> None:
    """Let background reads (worker threads) finish and their results land."""
    for _ in range(200):
        if until():
            return
        await asyncio.sleep(0.01)


async def test_concurrent_requests_with_an_uncached_key_read_the_database_once(
    modelcycle_services: Services,
) -> None:
    app = make_key(modelcycle_services, Role.APP)
    reads = counted(modelcycle_services, Clock())
    reads.gate.clear()  # a slow database: every request arrives while the read runs
    access = modelcycle_services.access
    waiting = [asyncio.ensure_future(access.authenticate_cached(app.key)) for _ in range(16)]
    await asyncio.sleep(0.05)
    reads.gate.set()

    assert await asyncio.gather(*waiting) == [app.principal] * 16
    assert reads.count == 1


async def test_a_busy_key_is_read_again_in_the_background_before_its_entry_ends(
    modelcycle_services: Services,
) -> None:
    app = make_key(modelcycle_services, Role.APP)
    clock = Clock()
    reads = counted(modelcycle_services, clock)
    access = modelcycle_services.access
    assert await access.authenticate_cached(app.key) == app.principal
    clock.now += 3.0  # fresh: no read
    assert await access.authenticate_cached(app.key) == app.principal
    assert reads.count == 1

    reads.gate.clear()  # the refresh will be slow: requests must not wait for it
    clock.now += 1.0  # within the last quarter of the entry's 5 s
    for _ in range(5):
        answer = await asyncio.wait_for(access.authenticate_cached(app.key), timeout=1)
        assert answer == app.principal
    reads.gate.set()
    await settle(lambda: access.principals.lookup(hash_key(app.key))[1] is False)

    assert reads.count == 2  # one background read for the five requests
    clock.now += 4.0  # past the first entry's end, within the refreshed one's
    assert await access.authenticate_cached(app.key) == app.principal
    assert reads.count == 2


async def test_a_background_read_that_finds_the_key_revoked_refuses_it_before_the_ttl(
    modelcycle_services: Services, client_for: ClientFactory
) -> None:
    clock = Clock()
    app, client = await revoked_elsewhere_once_cached(modelcycle_services, client_for, clock)
    clock.now += 4.0  # in the last quarter: served, and read again in the background
    assert (await client.get("/v1/models")).status_code == 200
    await settle(lambda: hash_key(app.key) not in modelcycle_services.access.principals)

    refused = await client.get("/v1/models")  # still within the first entry's 5 s
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]
