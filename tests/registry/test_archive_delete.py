"""Archive, restore and delete: refused while something points at the version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from modelcycle.api import create_app
from modelcycle.hookspecs import hookimpl
from modelcycle.settings import Settings
from modelcycle.testing import KeyPair, admin_of, make_services

MODEL = "/api/v1/models/bot"


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str)
    assert isinstance(error["type"], str)
    return dict(error)


async def versions(api: httpx.AsyncClient, count: int, model: str = MODEL) -> None:
    for index in range(count):
        response = await api.post(
            f"{model}/versions", json={"source": f"mock://v{index}", "backend": "mock"}
        )
        assert response.status_code == 201, response.text


async def status_of(api: httpx.AsyncClient, version: int) -> str:
    response = await api.get(f"{MODEL}/versions/{version}")
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def test_archive_is_refused_while_an_alias_points_at_it_then_restore(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    await versions(modelcycle_api, 2)
    await modelcycle_api.put(f"{MODEL}/aliases/production", json={"version": 1})

    refused = error_of(await modelcycle_api.post(f"{MODEL}/versions/1/archive"), 409)
    assert refused["type"] == "conflict_error"
    assert "production" in refused["message"]
    assert await status_of(modelcycle_api, 1) == "active"

    await modelcycle_api.put(f"{MODEL}/aliases/production", json={"version": 2})
    archived = await modelcycle_api.post(f"{MODEL}/versions/1/archive")
    assert archived.status_code == 200, archived.text
    assert archived.json()["status"] == "archived"
    error_of(await modelcycle_api.post(f"{MODEL}/versions/1/archive"), 409)

    no_alias = error_of(
        await modelcycle_api.put(f"{MODEL}/aliases/rollback", json={"version": 1}), 409
    )
    assert "archived" in no_alias["message"]
    assert (await modelcycle_api.get(f"{MODEL}/aliases/rollback")).status_code == 404

    active_only = await modelcycle_api.get(
        f"{MODEL}/versions", params={"include_archived": "false"}
    )
    assert [v["version"] for v in active_only.json()["data"]] == [2]
    everything = await modelcycle_api.get(f"{MODEL}/versions")
    assert [v["version"] for v in everything.json()["data"]] == [1, 2]

    restored = await modelcycle_api.post(f"{MODEL}/versions/1/restore")
    assert restored.status_code == 200
    assert restored.json()["status"] == "active"
    error_of(await modelcycle_api.post(f"{MODEL}/versions/1/restore"), 409)
    pointed = await modelcycle_api.put(f"{MODEL}/aliases/rollback", json={"version": 1})
    assert pointed.status_code == 200

    actions = [
        entry["action"]
        for entry in (
            await modelcycle_api.get("/api/v1/audit", params={"target": "model:bot@1"})
        ).json()["data"]
    ]
    assert actions == ["version.register", "version.archive", "version.restore"]


async def test_delete_is_refused_with_the_reason_while_an_alias_or_a_child_uses_it(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    await versions(modelcycle_api, 2)
    await modelcycle_api.put(f"{MODEL}/aliases/production", json={"version": 1})
    child = await modelcycle_api.post(
        "/api/v1/models/child/versions",
        json={"source": "mock://c", "backend": "mock", "parent": {"model": "bot", "version": 2}},
    )
    assert child.status_code == 201

    by_alias = error_of(await modelcycle_api.delete(f"{MODEL}/versions/1"), 409)
    assert "alias 'production'" in by_alias["message"]
    by_child = error_of(await modelcycle_api.delete(f"{MODEL}/versions/2"), 409)
    assert "derive" in by_child["message"]
    assert await status_of(modelcycle_api, 1) == "active"
    assert await status_of(modelcycle_api, 2) == "active"
    deletes = await modelcycle_api.get("/api/v1/audit", params={"action": "version.delete"})
    assert deletes.json()["data"] == []


async def test_delete_works_when_nothing_points_at_it_and_is_audited(
    modelcycle_api: httpx.AsyncClient, modelcycle_admin: KeyPair
) -> None:
    await versions(modelcycle_api, 2)

    deleted = await modelcycle_api.delete(f"{MODEL}/versions/1")
    assert deleted.status_code == 204
    error_of(await modelcycle_api.get(f"{MODEL}/versions/1"), 404)
    listed = (await modelcycle_api.get(f"{MODEL}/versions")).json()["data"]
    assert [v["version"] for v in listed] == [2]

    entries = (
        await modelcycle_api.get("/api/v1/audit", params={"action": "version.delete"})
    ).json()["data"]
    assert len(entries) == 1
    assert entries[0]["target"] == "model:bot@1"
    assert entries[0]["actor"] == f"key:{modelcycle_admin.principal.prefix}"
    assert entries[0]["before"]["source"] == "mock://v0"
    assert (await modelcycle_api.get("/api/v1/audit/verify")).json()["ok"] is True


async def test_a_deleted_version_number_is_never_reused(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    await versions(modelcycle_api, 2)
    assert (await modelcycle_api.delete(f"{MODEL}/versions/2")).status_code == 204

    again = await modelcycle_api.post(
        f"{MODEL}/versions", json={"source": "mock://different", "backend": "mock"}
    )

    assert again.status_code == 201
    # bot@2 named another artifact in the audit log; it must not come back as this one.
    assert again.json()["version"] == 3


async def test_a_model_with_versions_cannot_be_deleted_but_an_empty_one_can(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    await versions(modelcycle_api, 1)
    error = error_of(await modelcycle_api.delete(MODEL), 409)
    assert "version" in error["message"]
    assert (await modelcycle_api.delete(f"{MODEL}/versions/1")).status_code == 204
    assert (await modelcycle_api.delete(MODEL)).status_code == 204
    error_of(await modelcycle_api.get(MODEL), 404)


class DeploymentsPlugin:
    """Stands in for a later stage that deploys versions."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, int]] = []

    @hookimpl
    def modelcycle_version_references(self, project: str, model: str, version: int) -> list[str]:
        self.asked.append((project, model, version))
        if (model, version) == ("bot", 1):
            return ["deployment 'default' routes 100% of traffic to it"]
        return []


@pytest.fixture
async def plugin_api(
    modelcycle_settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, DeploymentsPlugin]]:
    plugin = DeploymentsPlugin()
    services = make_services(modelcycle_settings, plugins=(plugin,))
    transport = httpx.ASGITransport(app=create_app(services))
    headers = {"Authorization": f"Bearer {admin_of(services).key}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://modelcycle.test", headers=headers
    ) as client:
        yield client, plugin
    services.close()


async def test_delete_is_refused_while_a_plugin_reports_a_reference(
    plugin_api: tuple[httpx.AsyncClient, DeploymentsPlugin],
) -> None:
    api, plugin = plugin_api
    await versions(api, 2)

    error = error_of(await api.delete(f"{MODEL}/versions/1"), 409)
    assert "deployment 'default' routes 100% of traffic to it" in error["message"]
    assert (await api.get(f"{MODEL}/versions/1")).status_code == 200

    assert (await api.delete(f"{MODEL}/versions/2")).status_code == 204
    assert ("default", "bot", 1) in plugin.asked
    assert ("default", "bot", 2) in plugin.asked
