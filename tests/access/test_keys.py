"""API keys: shown once, stored as a hash, revocation and expiry, bad credentials."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from modelcycle.access import KeyCreate
from modelcycle.access.throttle import AuthThrottle
from modelcycle.services import Services
from modelcycle.store.tables import ApiKeyRow
from modelcycle.testing import KeyPair
from modelcycle.types import Role

ClientFactory = Callable[[str | None], httpx.AsyncClient]


def unauthorized(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert isinstance(error["message"], str)
    return dict(error)


async def create_key(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/keys", json={"name": "ci", "role": "viewer", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_a_new_key_is_shown_once_and_never_again(
    modelcycle_api: httpx.AsyncClient, modelcycle_services: Services, client_for: ClientFactory
) -> None:
    created = await create_key(modelcycle_api, name="deploy-bot", role="maintainer")
    raw = created["key"]
    digest = hashlib.sha256(raw.encode()).hexdigest()
    assert raw.startswith(f"mc_{created['prefix']}_")
    assert (created["name"], created["role"], created["project"]) == (
        "deploy-bot",
        "maintainer",
        "default",
    )

    one = await modelcycle_api.get(f"/api/v1/keys/{created['id']}")
    listed = await modelcycle_api.get("/api/v1/keys")
    audit = await modelcycle_api.get("/api/v1/audit")
    for response in (one, listed, audit):
        assert response.status_code == 200
        assert raw not in response.text
        assert raw.split("_")[2] not in response.text
        assert digest not in response.text
    assert "key" not in one.json()
    assert one.json()["prefix"] == created["prefix"]
    assert all("key" not in item for item in listed.json()["data"])
    assert created["prefix"] in [item["prefix"] for item in listed.json()["data"]]

    with modelcycle_services.store.read() as session:
        row = session.execute(select(ApiKeyRow).where(ApiKeyRow.id == created["id"])).scalar_one()
        stored = {column.key: getattr(row, column.key) for column in ApiKeyRow.__table__.columns}
    assert raw not in [str(value) for value in stored.values()]
    assert all(raw.split("_")[2] not in str(value) for value in stored.values())
    assert stored["key_hash"] == digest
    assert stored["prefix"] == created["prefix"]

    whoami = await client_for(raw).get("/api/v1/whoami")
    assert whoami.status_code == 200
    assert whoami.json() == {
        "key_id": created["id"],
        "name": "deploy-bot",
        "prefix": created["prefix"],
        "role": "maintainer",
        "project": "default",
        "is_root": False,
        "deployments": None,
    }


async def test_a_revoked_key_is_refused_at_once(
    modelcycle_api: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    created = await create_key(modelcycle_api)
    client = client_for(created["key"])
    assert (await client.get("/api/v1/models")).status_code == 200

    revoked = await modelcycle_api.delete(f"/api/v1/keys/{created['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert "key" not in revoked.json()

    error = unauthorized(await client.get("/api/v1/models"))
    assert "revoked" in error["message"]
    again = await modelcycle_api.delete(f"/api/v1/keys/{created['id']}")
    assert again.status_code == 409
    shown = (await modelcycle_api.get(f"/api/v1/keys/{created['id']}")).json()
    assert shown["revoked_at"] == revoked.json()["revoked_at"]
    actions = [
        e["action"]
        for e in (
            await modelcycle_api.get("/api/v1/audit", params={"target": f"key:{created['prefix']}"})
        ).json()["data"]
    ]
    assert actions == ["key.create", "key.revoke"]


async def test_an_expired_key_is_refused(
    modelcycle_services: Services, modelcycle_admin: KeyPair, client_for: ClientFactory
) -> None:
    created = modelcycle_services.access.create_key(
        modelcycle_admin.principal,
        KeyCreate(name="temp", role=Role.VIEWER, expires_at=datetime.now(UTC) + timedelta(hours=1)),
    )
    client = client_for(created.key)
    assert (await client.get("/api/v1/whoami")).status_code == 200

    with modelcycle_services.store.write() as session:
        session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.id == created.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    error = unauthorized(await client.get("/api/v1/whoami"))
    assert "expired" in error["message"]


async def test_expiry_must_be_in_the_future_and_carry_an_offset(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = await modelcycle_api.post(
        "/api/v1/keys", json={"name": "x", "role": "viewer", "expires_at": past}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "expires_at"
    naive = await modelcycle_api.post(
        "/api/v1/keys", json={"name": "x", "role": "viewer", "expires_at": "2099-01-01T00:00:00"}
    )
    assert naive.status_code == 400
    assert naive.json()["error"]["param"] == "expires_at"
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    ok = await create_key(modelcycle_api, expires_at=future)
    assert datetime.fromisoformat(ok["expires_at"]) == datetime.fromisoformat(future)
    keys = (await modelcycle_api.get("/api/v1/keys")).json()["data"]
    assert len(keys) == 2


async def test_malformed_or_unknown_credentials_are_401_with_a_bearer_challenge(
    modelcycle_api: httpx.AsyncClient,
    modelcycle_admin: KeyPair,
    modelcycle_services: Services,
    client_for: ClientFactory,
) -> None:
    # 30 failures from one address: past the throttle (tests/api/test_auth_throttle.py).
    modelcycle_services.access.throttle = AuthThrottle(0, 60)
    raw = modelcycle_admin.key
    prefix, secret = raw.split("_")[1], raw.split("_")[2]
    near_miss = f"mc_{prefix}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    headers = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {raw}"},
        {"Authorization": f"Token {raw}"},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": f"Bearer {raw}x"},
        {"Authorization": f"Bearer {near_miss}"},
        {"Authorization": f"Bearer mc_zzzzzzzz_{secret}"},
        {"Authorization": f"Bearer {raw.upper()}"},
    ]
    anonymous = client_for(None)
    for header in headers:
        for path in ("/api/v1/whoami", "/api/v1/models", "/api/v1/keys"):
            response = await anonymous.get(path, headers=header)
            error = unauthorized(response)
            assert raw not in response.text, header
            assert error["message"], header
    # The real key still works after all those attempts.
    assert (await modelcycle_api.get("/api/v1/whoami")).status_code == 200
