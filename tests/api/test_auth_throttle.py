"""Failed-authentication throttling: 20 failures from one address, then 429 even with a good key."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from modelcycle.access import Principal
from modelcycle.access.throttle import AuthThrottle
from modelcycle.api import create_app
from modelcycle.api.deps import client_address
from modelcycle.errors import RateLimited
from modelcycle.services import Services
from modelcycle.testing import KeyPair, make_key, make_services, make_settings
from modelcycle.types import Role

BAD_KEY = "mc_aaaaaaaa_" + "a" * 32
LIMIT, WINDOW_S = 20, 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def modelcycle_database_url() -> str | None:
    """SQLite: the throttle never reaches the database."""
    return None


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(modelcycle_services: Services, clock: Clock) -> FastAPI:
    modelcycle_services.access.throttle = AuthThrottle(LIMIT, WINDOW_S, clock=clock)
    return create_app(modelcycle_services)


@pytest.fixture
async def from_address(app: FastAPI) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def make(host: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(host, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://modelcycle.test")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def fail(client: httpx.AsyncClient, times: int, **headers: str) -> None:
    for _ in range(times):
        response = await client.get("/api/v1/whoami", headers=headers or bearer(BAD_KEY))
        assert response.status_code == 401, response.text


def throttled(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= WINDOW_S
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "auth_throttled"
    assert "too many failed authentications" in error["message"]
    return error


async def test_twenty_failures_then_429_even_with_a_good_key(
    from_address: Callable[[str], httpx.AsyncClient],
    modelcycle_admin: KeyPair,
    modelcycle_services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attacker = from_address("10.0.0.1")
    await fail(attacker, LIMIT)
    reads: list[str] = []
    authenticate = modelcycle_services.access.authenticate

    def counting(raw: str) -> Principal:
        reads.append(raw)
        return authenticate(raw)

    monkeypatch.setattr(modelcycle_services.access, "authenticate", counting)

    management = await attacker.get("/api/v1/whoami", headers=bearer(modelcycle_admin.key))
    inference = await attacker.get("/v1/models", headers=bearer(modelcycle_admin.key))
    another_bad_key = await attacker.get("/api/v1/whoami", headers=bearer(BAD_KEY))

    for response in (management, inference, another_bad_key):
        throttled(response)
    assert management.headers["Retry-After"] == "60"
    assert reads == [], "a blocked address must not reach the database"
    assert modelcycle_admin.key not in management.text


async def test_other_addresses_are_unaffected(
    from_address: Callable[[str], httpx.AsyncClient], modelcycle_admin: KeyPair
) -> None:
    await fail(from_address("10.0.0.1"), LIMIT)

    neighbour = from_address("10.0.0.2")
    assert (await neighbour.get("/api/v1/whoami", headers=bearer(modelcycle_admin.key))).is_success
    await fail(neighbour, LIMIT - 1)
    assert (await neighbour.get("/v1/models", headers=bearer(modelcycle_admin.key))).is_success


async def test_the_block_ends_with_the_window_and_counting_starts_again(
    from_address: Callable[[str], httpx.AsyncClient], modelcycle_admin: KeyPair, clock: Clock
) -> None:
    attacker = from_address("10.0.0.1")
    await fail(attacker, LIMIT // 2)
    clock.now += 45
    await fail(attacker, LIMIT - LIMIT // 2)

    blocked = await attacker.get("/api/v1/whoami", headers=bearer(modelcycle_admin.key))
    assert blocked.headers["Retry-After"] == "15"  # the rest of the window opened 45 s ago
    clock.now += 14.5
    throttled(await attacker.get("/api/v1/whoami", headers=bearer(modelcycle_admin.key)))
    clock.now += 0.5

    assert (await attacker.get("/api/v1/whoami", headers=bearer(modelcycle_admin.key))).is_success
    await fail(attacker, LIMIT)  # a fresh window: the old failures no longer count
    throttled(await attacker.get("/api/v1/whoami", headers=bearer(modelcycle_admin.key)))


async def test_failures_older_than_the_window_do_not_add_up(
    from_address: Callable[[str], httpx.AsyncClient], modelcycle_admin: KeyPair, clock: Clock
) -> None:
    attacker = from_address("10.0.0.1")
    await fail(attacker, LIMIT - 1)
    clock.now += WINDOW_S
    await fail(attacker, LIMIT - 1)
    assert (await attacker.get("/api/v1/whoami", headers=bearer(modelcycle_admin.key))).is_success


async def test_successes_and_missing_headers_do_not_count_malformed_headers_do(
    from_address: Callable[[str], httpx.AsyncClient], modelcycle_admin: KeyPair
) -> None:
    client = from_address("10.0.0.1")
    for _ in range(3 * LIMIT):
        assert (await client.get("/v1/models", headers=bearer(modelcycle_admin.key))).is_success
        assert (await client.get("/api/v1/whoami")).status_code == 401  # no header at all
    await fail(client, LIMIT - 2)
    assert (await client.get("/api/v1/whoami", headers=bearer(modelcycle_admin.key))).is_success

    await fail(client, 1, Authorization=f"Basic {modelcycle_admin.key}")
    await fail(client, 1, Authorization="Bearer not-a-key")
    throttled(await client.get("/api/v1/whoami", headers=bearer(modelcycle_admin.key)))


async def test_revoked_and_expired_keys_count(
    from_address: Callable[[str], httpx.AsyncClient],
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
) -> None:
    revoked = make_key(modelcycle_services, Role.APP)
    modelcycle_services.access.revoke_key(modelcycle_admin.principal, revoked.principal.key_id)
    client = from_address("10.0.0.1")
    for _ in range(LIMIT):
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
            headers=bearer(revoked.key),
        )
        assert response.status_code == 401
    throttled(await client.get("/v1/models", headers=bearer(modelcycle_admin.key)))


async def test_a_limit_of_zero_turns_the_throttle_off(
    modelcycle_services: Services,
    from_address: Callable[[str], httpx.AsyncClient],
    modelcycle_admin: KeyPair,
) -> None:
    modelcycle_services.access.throttle = AuthThrottle(0, WINDOW_S)
    client = from_address("10.0.0.1")
    await fail(client, 3 * LIMIT)
    assert (await client.get("/api/v1/whoami", headers=bearer(modelcycle_admin.key))).is_success


async def test_the_start_of_a_block_is_logged_once_without_key_material(
    from_address: Callable[[str], httpx.AsyncClient],
    modelcycle_admin: KeyPair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    attacker = from_address("10.0.0.9")
    with caplog.at_level(logging.WARNING, logger="modelcycle.access.throttle"):
        await fail(attacker, LIMIT)
        for _ in range(5):
            await attacker.get("/api/v1/whoami", headers=bearer(modelcycle_admin.key))

    records = [r for r in caplog.records if r.name == "modelcycle.access.throttle"]
    assert len(records) == 1
    assert "10.0.0.9" in records[0].getMessage()
    assert BAD_KEY not in caplog.text
    assert BAD_KEY.split("_")[1] not in caplog.text
    assert modelcycle_admin.key not in caplog.text


def test_settings_reach_the_throttle(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, auth_failure_limit=5, auth_failure_window_s=10)
    services = make_services(settings)
    try:
        throttle = services.access.throttle
        assert (throttle.limit, throttle.window_s) == (5, 10.0)
    finally:
        services.close()


def test_memory_stays_bounded_when_an_attacker_rotates_addresses() -> None:
    throttle = AuthThrottle(2, WINDOW_S, max_addresses=100, clock=Clock())
    for n in range(20_000):
        address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        throttle.failed(address)
        throttle.failed(address)
    assert len(throttle) <= 200
    throttle.check("10.0.0.1")  # evicted long ago: not blocked any more
    with pytest.raises(RateLimited, match="too many failed authentications"):
        throttle.check("10.0.78.31")  # the latest: still blocked


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8::1%eth0", "2001:db8::/64"),
        ("2001:db8:1:2:ffff:1:2:3", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
        ("testclient", "testclient"),
    ],
)
def test_ipv6_clients_are_counted_by_their_64_network(host: str, address: str) -> None:
    assert client_address({"type": "http", "client": (host, 1234)}) == address


def test_a_request_without_a_client_address_is_never_blocked() -> None:
    throttle = AuthThrottle(1, WINDOW_S)
    address = client_address({"type": "http", "client": None})
    throttle.failed(address)
    throttle.check(address)
    assert address is None
    assert len(throttle) == 0
