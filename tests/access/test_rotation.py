"""Key rotation: a new key shown once, the old one revoked now or after a grace period."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from e2e.live import LiveServer
from modelcycle.access import KeyCreate
from modelcycle.access.keys import hash_key
from modelcycle.client import AsyncClient, Client
from modelcycle.errors import Conflict
from modelcycle.services import Services
from modelcycle.testing import KeyPair
from modelcycle.types import Role

ClientFactory = Callable[[str | None], httpx.AsyncClient]


def new_key(services: Services, admin: KeyPair, **fields: Any) -> KeyPair:
    body = KeyCreate(name="ci-deployer", role=Role.MAINTAINER, **fields)
    created = services.access.create_key(admin.principal, body)
    return KeyPair(created.key, services.access.authenticate(created.key))


async def rotate(api: httpx.AsyncClient, key_id: int, **body: Any) -> dict[str, Any]:
    response = await api.post(f"/api/v1/keys/{key_id}/rotate", json=body or None)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_rotation_without_grace_revokes_the_old_key_at_once(
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
    modelcycle_api: httpx.AsyncClient,
    client_for: ClientFactory,
) -> None:
    expiry = datetime.now(UTC) + timedelta(days=30)
    old = new_key(modelcycle_services, modelcycle_admin, expires_at=expiry, deployments=["alpha"])
    old_client = client_for(old.key)
    assert (await old_client.get("/v1/models")).status_code == 200  # now cached in memory

    rotated = await rotate(modelcycle_api, old.principal.key_id)

    assert hash_key(old.key) not in modelcycle_services.access.principals
    refused = await old_client.get("/v1/models")
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]
    assert rotated["key"] != old.key
    assert (rotated["name"], rotated["role"], rotated["project"], rotated["deployments"]) == (
        "ci-deployer",
        "maintainer",
        "default",
        ["alpha"],
    )
    assert datetime.fromisoformat(rotated["expires_at"]) == expiry
    assert rotated["rotated_from"] == old.principal.key_id
    assert rotated["previous"]["revoked_at"] is not None
    me = await client_for(rotated["key"]).get("/api/v1/whoami")
    assert me.json()["key_id"] == rotated["id"]
    shown = (await modelcycle_api.get(f"/api/v1/keys/{rotated['id']}")).json()
    assert "key" not in shown
    assert shown["rotated_from"] == old.principal.key_id


async def test_a_grace_period_keeps_the_old_key_working_until_it_ends(
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
    modelcycle_api: httpx.AsyncClient,
    client_for: ClientFactory,
) -> None:
    old = new_key(modelcycle_services, modelcycle_admin)
    old_client = client_for(old.key)
    assert (await old_client.get("/v1/models")).status_code == 200
    before = datetime.now(UTC)

    rotated = await rotate(modelcycle_api, old.principal.key_id, grace_s=3600)

    previous = rotated["previous"]
    ends = datetime.fromisoformat(previous["expires_at"])
    assert previous["revoked_at"] is None
    assert before + timedelta(seconds=3600) <= ends <= datetime.now(UTC) + timedelta(seconds=3600)
    assert rotated["expires_at"] is None  # the old key never expired, nor does the new one
    assert hash_key(old.key) not in modelcycle_services.access.principals
    assert (await old_client.get("/v1/models")).status_code == 200
    assert (await client_for(rotated["key"]).get("/v1/models")).status_code == 200


async def test_grace_never_extends_a_key_and_expires_at_overrides_the_inherited_expiry(
    modelcycle_services: Services, modelcycle_admin: KeyPair, modelcycle_api: httpx.AsyncClient
) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=10)
    old = new_key(modelcycle_services, modelcycle_admin, expires_at=soon)
    later = datetime.now(UTC) + timedelta(days=90)

    rotated = await rotate(
        modelcycle_api, old.principal.key_id, grace_s=86_400, expires_at=later.isoformat()
    )

    assert datetime.fromisoformat(rotated["previous"]["expires_at"]) == soon
    assert datetime.fromisoformat(rotated["expires_at"]) == later


async def test_rotation_is_audited_for_both_keys(
    modelcycle_services: Services, modelcycle_admin: KeyPair, modelcycle_api: httpx.AsyncClient
) -> None:
    old = new_key(modelcycle_services, modelcycle_admin)
    rotated = await rotate(modelcycle_api, old.principal.key_id, grace_s=60)

    async def actions(prefix: str) -> list[tuple[str, dict[str, Any]]]:
        response = await modelcycle_api.get("/api/v1/audit", params={"target": f"key:{prefix}"})
        return [(e["action"], e["after"]) for e in response.json()["data"]]

    old_entries = await actions(old.principal.prefix)
    new_entries = await actions(rotated["prefix"])
    assert [action for action, _ in old_entries] == ["key.create", "key.rotate"]
    assert old_entries[1][1]["replaced_by"] == rotated["prefix"]
    assert old_entries[1][1]["grace_s"] == 60
    assert new_entries == [("key.create", new_entries[0][1])]
    assert new_entries[0][1]["rotated_from"] == old.principal.key_id
    assert rotated["key"] not in str(old_entries + new_entries)


async def test_a_key_is_rotated_once_and_a_revoked_key_not_at_all(
    modelcycle_services: Services, modelcycle_admin: KeyPair, modelcycle_api: httpx.AsyncClient
) -> None:
    old = new_key(modelcycle_services, modelcycle_admin)
    first = await rotate(modelcycle_api, old.principal.key_id, grace_s=600)

    again = await modelcycle_api.post(f"/api/v1/keys/{old.principal.key_id}/rotate")
    assert again.status_code == 409
    assert f"already rotated into key {first['id']}" in again.json()["error"]["message"]
    second = await rotate(modelcycle_api, first["id"])
    assert second["rotated_from"] == first["id"]
    revoked = await modelcycle_api.post(f"/api/v1/keys/{first['id']}/rotate")
    assert revoked.status_code == 409
    assert "revoked" in revoked.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"grace_s": -1}, 400, "grace_s"),
        ({"grace_s": 604_801}, 400, "grace_s"),
        ({"grace_s": "an hour"}, 400, "grace_s"),
        ({"expires_at": "2000-01-01T00:00:00Z"}, 400, "expires_at"),
        ({"grace": 60}, 400, "grace"),
    ],
)
async def test_bad_rotation_bodies_are_400s(
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
    modelcycle_api: httpx.AsyncClient,
    body: dict[str, Any],
    status: int,
    param: str,
) -> None:
    old = new_key(modelcycle_services, modelcycle_admin)
    response = await modelcycle_api.post(f"/api/v1/keys/{old.principal.key_id}/rotate", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param
    assert (await modelcycle_api.get("/api/v1/keys")).json()["data"][-1]["id"] == (
        old.principal.key_id
    ), "no key was made"


async def test_an_unknown_key_is_404(modelcycle_api: httpx.AsyncClient) -> None:
    response = await modelcycle_api.post("/api/v1/keys/999999/rotate")
    assert response.status_code == 404
    assert "key 999999" in response.json()["error"]["message"]


@pytest.mark.e2e
def test_the_sdk_rotates_a_key(live_server: LiveServer) -> None:
    with Client(live_server.url, live_server.admin_key) as client:
        created = client.keys.create("sdk", Role.APP, deployments=["alpha"])
        rotated = client.keys.rotate(created.id, grace_s=120)
        with pytest.raises(Conflict):
            client.keys.rotate(created.id)

    assert rotated.rotated_from == created.id
    assert rotated.deployments == ["alpha"]
    assert rotated.previous.expires_at is not None


@pytest.mark.e2e
async def test_the_async_sdk_rotates_a_key(live_server: LiveServer) -> None:
    async with AsyncClient(live_server.url, live_server.admin_key) as client:
        created = await client.keys.create("sdk", "viewer")
        rotated = await client.keys.rotate(created.id)
        old = await client.keys.get(created.id)

    assert rotated.rotated_from == created.id
    assert old.revoked_at is not None
