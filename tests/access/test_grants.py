"""No key grants more than it has: roles at or below its own, deployments within its allowlist.

Keys are managed by maintainers and admins; viewers are read-only and ``app``
keys call models, so both are refused outright. Every refusal leaves the audit
log as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from modelcycle.access import KeyCreate
from modelcycle.services import Services
from modelcycle.store.tables import AuditEntryRow
from modelcycle.testing import KeyPair, make_key
from modelcycle.types import Role

ClientFactory = Callable[[str | None], httpx.AsyncClient]


def audit_count(services: Services) -> int:
    with services.store.read() as session:
        return int(session.execute(select(func.count(AuditEntryRow.seq))).scalar_one())


def limited_key(services: Services, admin: KeyPair, role: Role, deployments: list[str]) -> KeyPair:
    created = services.access.create_key(
        admin.principal, KeyCreate(name="limited", role=role, deployments=deployments)
    )
    return KeyPair(created.key, services.access.authenticate(created.key))


def refused(response: httpx.Response, *fragments: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["type"] == "permission_error"
    for fragment in fragments:
        assert fragment in error["message"]


@pytest.mark.parametrize(
    ("grantor", "grantee", "allowed"),
    [
        (grantor, grantee, Role(grantor).allows(Role(grantee)))
        for grantor in ("admin", "maintainer")
        for grantee in ("admin", "maintainer", "viewer", "app")
    ],
)
async def test_a_key_creates_keys_up_to_its_own_role(
    modelcycle_services: Services,
    client_for: ClientFactory,
    grantor: str,
    grantee: str,
    allowed: bool,
) -> None:
    key = make_key(modelcycle_services, Role(grantor))
    before = audit_count(modelcycle_services)

    response = await client_for(key.key).post(
        "/api/v1/keys", json={"name": "minted", "role": grantee}
    )

    if allowed:
        assert response.status_code == 201, response.text
        assert response.json()["role"] == grantee
        assert audit_count(modelcycle_services) == before + 1
    else:
        refused(response, f"a '{grantor}' key may grant roles up to '{grantor}'", f"'{grantee}'")
        assert audit_count(modelcycle_services) == before


@pytest.mark.parametrize("role", [Role.VIEWER, Role.APP])
async def test_viewer_and_app_keys_manage_no_keys_at_all(
    modelcycle_services: Services, client_for: ClientFactory, role: Role
) -> None:
    caller = client_for(make_key(modelcycle_services, role).key)
    victim = make_key(modelcycle_services, Role.APP).principal.key_id
    before = audit_count(modelcycle_services)

    responses = [
        await caller.post("/api/v1/keys", json={"name": "x", "role": "app"}),
        await caller.get("/api/v1/keys"),
        await caller.get(f"/api/v1/keys/{victim}"),
        await caller.post(f"/api/v1/keys/{victim}/rotate"),
        await caller.delete(f"/api/v1/keys/{victim}"),
    ]

    for response in responses:
        refused(response, "needs a key with role 'maintainer' or higher", f"this key is '{role}'")
    assert audit_count(modelcycle_services) == before


async def test_a_maintainer_revokes_and_rotates_only_keys_up_to_its_role(
    modelcycle_services: Services, client_for: ClientFactory
) -> None:
    maintainer = client_for(make_key(modelcycle_services, Role.MAINTAINER).key)
    admin_key = make_key(modelcycle_services, Role.ADMIN)
    peer = make_key(modelcycle_services, Role.MAINTAINER)
    admin_id = admin_key.principal.key_id
    before = audit_count(modelcycle_services)

    refused(await maintainer.delete(f"/api/v1/keys/{admin_id}"), f"key {admin_id}", "'admin'")
    refused(await maintainer.post(f"/api/v1/keys/{admin_id}/rotate"), "'admin'")
    assert audit_count(modelcycle_services) == before
    assert (await client_for(admin_key.key).get("/api/v1/whoami")).status_code == 200

    listed = await maintainer.get("/api/v1/keys")
    rotated = await maintainer.post(f"/api/v1/keys/{peer.principal.key_id}/rotate")
    assert listed.status_code == 200
    assert admin_key.principal.prefix in {k["prefix"] for k in listed.json()["data"]}
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["role"] == "maintainer"


async def test_a_limited_key_grants_at_most_its_own_deployments(
    modelcycle_services: Services, modelcycle_admin: KeyPair, client_for: ClientFactory
) -> None:
    limited = limited_key(modelcycle_services, modelcycle_admin, Role.MAINTAINER, ["alpha", "beta"])
    caller = client_for(limited.key)
    before = audit_count(modelcycle_services)

    wider = await caller.post(
        "/api/v1/keys", json={"name": "w", "role": "app", "deployments": ["alpha", "gamma"]}
    )
    refused(wider, "gamma")
    assert "beta" not in wider.json()["error"]["message"]
    assert audit_count(modelcycle_services) == before

    inherited = await caller.post("/api/v1/keys", json={"name": "i", "role": "app"})
    narrower = await caller.post(
        "/api/v1/keys", json={"name": "n", "role": "app", "deployments": ["beta"]}
    )
    assert inherited.status_code == narrower.status_code == 201
    assert inherited.json()["deployments"] == ["alpha", "beta"]
    assert narrower.json()["deployments"] == ["beta"]


async def test_a_limited_key_cannot_rotate_an_unlimited_key_into_its_hands(
    modelcycle_services: Services, modelcycle_admin: KeyPair, client_for: ClientFactory
) -> None:
    limited = limited_key(modelcycle_services, modelcycle_admin, Role.MAINTAINER, ["alpha"])
    unlimited = make_key(modelcycle_services, Role.APP)
    before = audit_count(modelcycle_services)

    response = await client_for(limited.key).post(
        f"/api/v1/keys/{unlimited.principal.key_id}/rotate"
    )

    refused(response, "may call only some deployments")
    assert audit_count(modelcycle_services) == before
    assert (await client_for(unlimited.key).get("/v1/models")).status_code == 200


async def test_an_admin_creates_admin_keys_and_the_bound_is_audited_as_given(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    created = await modelcycle_api.post(
        "/api/v1/keys",
        json={"name": "second-admin", "role": "admin", "deployments": ["b", "a", "b"]},
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    assert body["role"] == "admin"
    assert body["deployments"] == ["a", "b"]
    entries = (
        await modelcycle_api.get("/api/v1/audit", params={"target": f"key:{body['prefix']}"})
    ).json()["data"]
    assert [(e["action"], e["after"]["deployments"]) for e in entries] == [
        ("key.create", ["a", "b"])
    ]
