"""The deployments API over HTTP and through the async SDK (in process)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from modelcycle import AsyncClient, Conflict, InvalidInput, NotFound, PermissionDenied
from modelcycle.services import Services
from modelcycle.testing import KeyPair, make_key, make_project, register
from modelcycle.types import Role


@pytest.fixture
def bot(modelcycle_services: Services, modelcycle_admin: KeyPair) -> str:
    register(modelcycle_services, modelcycle_admin.principal, "bot")
    register(modelcycle_services, modelcycle_admin.principal, "bot")
    return "bot"


@pytest.fixture
async def sdk(modelcycle_app: FastAPI, modelcycle_admin: KeyPair) -> AsyncIterator[AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=modelcycle_app))
    async with AsyncClient("http://modelcycle.test", modelcycle_admin.key, http_client=http) as c:
        yield c


async def test_the_routes_create_change_promote_roll_back_and_delete(
    modelcycle_api: httpx.AsyncClient, bot: str
) -> None:
    body = {"name": "chat", "routes": [{"target": "bot@1", "weight": 100}]}
    created = await modelcycle_api.post("/api/v1/deployments", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["spec"] == {
        "routes": [{"target": "bot@1", "weight": 100}],
        "shadow": None,
        "fallbacks": [],
        "timeout_s": 60.0,
        "retries": 0,
        "sticky": False,
        "limits": {
            "rpm": None,
            "tpm": None,
            "key_rpm": None,
            "key_tpm": None,
            "max_concurrency": None,
            "queue_timeout_s": 10.0,
        },
        "cache": {"ttl_s": 0.0},
        "breaker": {
            "failures": 5,
            "error_rate": None,
            "window_s": 60.0,
            "min_requests": 10,
            "cooldown_s": 10.0,
        },
        "guard": None,
    }
    canary = {"routes": [{"target": "bot@1", "weight": 75}, {"target": "bot@2", "weight": 25}]}
    updated = await modelcycle_api.put(
        "/api/v1/deployments/chat", json=canary, params={"expected_revision": 1}
    )
    assert updated.status_code == 200, updated.text
    stale = await modelcycle_api.put(
        "/api/v1/deployments/chat", json=canary, params={"expected_revision": 1}
    )
    assert stale.status_code == 409
    promoted = await modelcycle_api.post("/api/v1/deployments/chat/promote")
    assert promoted.json()["spec"]["routes"] == [{"target": "bot@2", "weight": 100}]
    rolled = await modelcycle_api.post("/api/v1/deployments/chat/rollback")
    assert rolled.json()["revision"] == 4
    assert rolled.json()["spec"]["routes"] == canary["routes"]
    revisions = (await modelcycle_api.get("/api/v1/deployments/chat/revisions")).json()
    assert [r["action"] for r in revisions] == ["create", "update", "promote", "rollback"]
    listed = (await modelcycle_api.get("/api/v1/deployments")).json()
    assert [d["name"] for d in listed["data"]] == ["chat"]
    assert listed["next_cursor"] is None
    assert (await modelcycle_api.delete("/api/v1/deployments/chat")).status_code == 204
    gone = await modelcycle_api.get("/api/v1/deployments/chat")
    assert gone.status_code == 404
    assert gone.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "chat", "routes": []}, "routes"),
        ({"name": "chat", "routes": [{"target": "bot@1", "weight": 50}]}, None),
        ({"name": "Chat!", "routes": [{"target": "bot@1", "weight": 100}]}, "name"),
        ({"name": "chat", "routes": [{"target": "bot@9", "weight": 100}]}, "routes[0].target"),
        ({"name": "chat", "routes": [{"target": "bot@1", "weight": 100}], "x": 1}, "x"),
        ({"name": "chat", "routes": [{"target": "bot@1", "weight": 100}], "retries": 9}, "retries"),
    ],
)
async def test_bad_bodies_are_400_with_the_shared_error_shape(
    modelcycle_api: httpx.AsyncClient, bot: str, body: dict[str, object], param: str | None
) -> None:
    response = await modelcycle_api.post("/api/v1/deployments", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


async def test_viewer_and_app_keys_are_refused_and_other_projects_see_404(
    modelcycle_api: httpx.AsyncClient,
    modelcycle_app: FastAPI,
    modelcycle_services: Services,
    bot: str,
) -> None:
    body = {"name": "chat", "routes": [{"target": "bot@1", "weight": 100}]}
    assert (await modelcycle_api.post("/api/v1/deployments", json=body)).status_code == 201
    viewer = make_key(modelcycle_services, Role.VIEWER)
    app_key = make_key(modelcycle_services, Role.APP)
    other = make_key(modelcycle_services, Role.ADMIN, make_project(modelcycle_services))
    transport = httpx.ASGITransport(app=modelcycle_app)

    async def call(key: str, method: str, path: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path, headers={"Authorization": f"Bearer {key}"})

    assert (await call(viewer.key, "GET", "/api/v1/deployments/chat")).status_code == 200
    for method, path in [
        ("POST", "/api/v1/deployments/chat/promote"),
        ("POST", "/api/v1/deployments/chat/rollback"),
        ("DELETE", "/api/v1/deployments/chat"),
    ]:
        refused = await call(viewer.key, method, path)
        assert refused.status_code == 403
        assert refused.json()["error"]["type"] == "permission_error"
    assert (await call(app_key.key, "GET", "/api/v1/deployments")).status_code == 403
    hidden = await call(other.key, "GET", "/api/v1/deployments/chat")
    assert hidden.status_code == 404
    assert (await call(other.key, "DELETE", "/api/v1/deployments/chat")).status_code == 404
    assert (await call(other.key, "GET", "/api/v1/deployments")).json()["data"] == []


async def test_the_async_sdk_covers_every_operation(sdk: AsyncClient, bot: str) -> None:
    created = await sdk.deployments.create("chat", {"bot@1": 90, "bot@2": 10}, fallbacks=["bot@2"])
    assert [(r.target, r.weight) for r in created.spec.routes] == [("bot@1", 90), ("bot@2", 10)]

    changed = await sdk.deployments.update("chat", shadow="bot@2", retries=2)
    assert changed.spec.shadow == "bot@2"
    assert changed.spec.retries == 2
    assert changed.spec.routes == created.spec.routes  # untouched fields stay
    cleared = await sdk.deployments.update("chat", shadow=None, fallbacks=[])
    assert cleared.spec.shadow is None
    assert cleared.spec.fallbacks == []
    promoted = await sdk.deployments.promote("chat")
    assert promoted.spec.routes[0].target == "bot@2"
    restored = await sdk.deployments.rollback("chat", to_revision=1)
    assert restored.spec == created.spec
    assert [d.name for d in await sdk.deployments.list()] == ["chat"]
    assert len(await sdk.deployments.revisions("chat")) == 5
    with pytest.raises(Conflict):
        await sdk.deployments.replace("chat", created.spec, expected_revision=1)
    with pytest.raises(InvalidInput, match="bot@9"):
        await sdk.deployments.create("other", "bot@9")
    await sdk.deployments.delete("chat")
    with pytest.raises(NotFound):
        await sdk.deployments.get("chat")


async def test_the_sdk_raises_permission_denied_for_a_viewer(
    modelcycle_app: FastAPI, modelcycle_services: Services, bot: str
) -> None:
    viewer = make_key(modelcycle_services, Role.VIEWER)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=modelcycle_app))
    async with AsyncClient("http://t", viewer.key, http_client=http) as client:
        with pytest.raises(PermissionDenied):
            await client.deployments.create("chat", "bot@1")
