"""Projects (tenants): who may create them, and that they never see each other."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from modelcycle.services import Services
from modelcycle.testing import make_key, make_project
from modelcycle.types import Role

ClientFactory = Callable[[str | None], httpx.AsyncClient]


async def test_root_admin_creates_projects_and_keys_in_them(
    modelcycle_api: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    created = await modelcycle_api.post(
        "/api/v1/projects", json={"name": "team-a", "description": "support team"}
    )
    assert created.status_code == 201, created.text
    assert (created.json()["name"], created.json()["description"]) == ("team-a", "support team")
    duplicate = await modelcycle_api.post("/api/v1/projects", json={"name": "team-a"})
    assert duplicate.status_code == 409
    listed = (await modelcycle_api.get("/api/v1/projects")).json()
    assert [p["name"] for p in listed] == ["default", "team-a"]

    key = await modelcycle_api.post(
        "/api/v1/keys", json={"name": "a-admin", "role": "admin", "project": "team-a"}
    )
    assert key.status_code == 201, key.text
    assert key.json()["project"] == "team-a"
    whoami = (await client_for(key.json()["key"]).get("/api/v1/whoami")).json()
    assert (whoami["project"], whoami["role"], whoami["is_root"]) == ("team-a", "admin", False)

    team_keys = (await modelcycle_api.get("/api/v1/keys", params={"project": "team-a"})).json()[
        "data"
    ]
    assert [k["name"] for k in team_keys] == ["a-admin"]
    root_keys = (await modelcycle_api.get("/api/v1/keys")).json()["data"]
    assert "a-admin" not in [k["name"] for k in root_keys]
    missing = await modelcycle_api.post(
        "/api/v1/keys", json={"name": "x", "role": "admin", "project": "no-such-team"}
    )
    assert missing.status_code == 404


async def test_a_project_admin_cannot_create_projects_or_reach_other_projects_keys(
    modelcycle_services: Services, client_for: ClientFactory
) -> None:
    team_a, team_b = make_project(modelcycle_services), make_project(modelcycle_services)
    admin_a = client_for(make_key(modelcycle_services, Role.ADMIN, team_a).key)
    b_key = make_key(modelcycle_services, Role.VIEWER, team_b)

    refused = await admin_a.post("/api/v1/projects", json={"name": "team-c"})
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_error"
    assert [p["name"] for p in (await admin_a.get("/api/v1/projects")).json()] == [team_a]

    for response in (
        await admin_a.get("/api/v1/keys", params={"project": team_b}),
        await admin_a.get(f"/api/v1/keys/{b_key.principal.key_id}"),
        await admin_a.delete(f"/api/v1/keys/{b_key.principal.key_id}"),
        await admin_a.post(
            "/api/v1/keys", json={"name": "sneaky", "role": "admin", "project": team_b}
        ),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["type"] == "not_found_error"

    # The other project's key still works and no key was added there.
    assert (await client_for(b_key.key).get("/api/v1/whoami")).status_code == 200
    names = [
        k.name
        for k in modelcycle_services.access.list_keys(
            make_key(modelcycle_services, Role.ADMIN, team_b).principal,
            project=None,
            cursor=None,
            limit=100,
        ).items
    ]
    assert "sneaky" not in names
    own = (await admin_a.get("/api/v1/keys")).json()["data"]
    assert [k["project"] for k in own] == [team_a]


async def test_a_project_never_sees_another_projects_models(
    modelcycle_services: Services, client_for: ClientFactory
) -> None:
    team_a, team_b = make_project(modelcycle_services), make_project(modelcycle_services)
    a = client_for(make_key(modelcycle_services, Role.MAINTAINER, team_a).key)
    b = client_for(make_key(modelcycle_services, Role.ADMIN, team_b).key)

    registered = await a.post(
        "/api/v1/models/shared-name/versions", json={"source": "mock://a", "backend": "mock"}
    )
    assert registered.status_code == 201
    assert (
        await a.put("/api/v1/models/shared-name/aliases/production", json={"version": 1})
    ).status_code == 200

    assert (await b.get("/api/v1/models")).json()["data"] == []
    for path in (
        "/api/v1/models/shared-name",
        "/api/v1/models/shared-name/versions",
        "/api/v1/models/shared-name/versions/1",
        "/api/v1/models/shared-name/versions/1/lineage",
        "/api/v1/models/shared-name/aliases",
        "/api/v1/models/shared-name/aliases/production",
        "/api/v1/models/shared-name/alias-history",
    ):
        response = await b.get(path)
        assert response.status_code == 404, path
        assert "mock://a" not in response.text
    assert (await b.delete("/api/v1/models/shared-name/versions/1")).status_code == 404
    assert (
        await b.put("/api/v1/models/shared-name/aliases/production", json={"version": 1})
    ).status_code == 404

    # B's own model of the same name is independent of A's.
    own = await b.post(
        "/api/v1/models/shared-name/versions", json={"source": "mock://b", "backend": "mock"}
    )
    assert own.status_code == 201
    assert own.json()["version"] == 1
    a_version = (await a.get("/api/v1/models/shared-name/versions/1")).json()
    assert a_version["source"] == "mock://a"
    assert a_version["aliases"] == ["production"]

    # B's admin reads only B's audit entries.
    audit = (await b.get("/api/v1/audit")).json()["data"]
    assert audit
    assert {entry["project"] for entry in audit} == {team_b}
    assert "mock://a" not in str(audit)
