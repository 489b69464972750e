"""Aliases: set, move, read, list, delete, and the history of every move."""

from __future__ import annotations

from typing import Any

import httpx

from modelcycle.testing import KeyPair

MODEL = "/api/v1/models/chat"


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str)
    assert isinstance(error["type"], str)
    return dict(error)


async def three_versions(api: httpx.AsyncClient) -> None:
    for index in range(3):
        response = await api.post(
            f"{MODEL}/versions", json={"source": f"mock://v{index}", "backend": "mock"}
        )
        assert response.status_code == 201, response.text


async def test_set_move_get_list_and_delete_an_alias(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    await three_versions(modelcycle_api)

    created = await modelcycle_api.put(f"{MODEL}/aliases/production", json={"version": 1})
    assert created.status_code == 200, created.text
    assert created.json()["version"] == 1
    await modelcycle_api.put(f"{MODEL}/aliases/staging", json={"version": 3})
    moved = await modelcycle_api.put(f"{MODEL}/aliases/production", json={"version": 2})
    assert moved.json()["version"] == 2

    got = (await modelcycle_api.get(f"{MODEL}/aliases/production")).json()
    assert (got["model"], got["alias"], got["version"]) == ("chat", "production", 2)
    listed = (await modelcycle_api.get(f"{MODEL}/aliases")).json()
    assert [(a["alias"], a["version"]) for a in listed] == [("production", 2), ("staging", 3)]
    model = (await modelcycle_api.get(MODEL)).json()
    assert model["aliases"] == {"production": 2, "staging": 3}
    version = (await modelcycle_api.get(f"{MODEL}/versions/2")).json()
    assert version["aliases"] == ["production"]

    deleted = await modelcycle_api.delete(f"{MODEL}/aliases/staging")
    assert deleted.status_code == 204
    error_of(await modelcycle_api.get(f"{MODEL}/aliases/staging"), 404)
    assert (await modelcycle_api.get(MODEL)).json()["aliases"] == {"production": 2}


async def test_alias_history_records_every_move_with_from_to_and_actor(
    modelcycle_api: httpx.AsyncClient, modelcycle_admin: KeyPair
) -> None:
    await three_versions(modelcycle_api)
    for version in (1, 2, 3, 1):
        response = await modelcycle_api.put(
            f"{MODEL}/aliases/production", json={"version": version}
        )
        assert response.status_code == 200
    await modelcycle_api.put(f"{MODEL}/aliases/canary", json={"version": 3})
    await modelcycle_api.delete(f"{MODEL}/aliases/production")

    history = (await modelcycle_api.get(f"{MODEL}/alias-history")).json()
    assert [(m["alias"], m["from_version"], m["to_version"]) for m in history] == [
        ("production", None, 1),
        ("production", 1, 2),
        ("production", 2, 3),
        ("production", 3, 1),
        ("canary", None, 3),
        ("production", 1, None),
    ]
    assert {move["actor"] for move in history} == {f"key:{modelcycle_admin.principal.prefix}"}

    only_canary = (
        await modelcycle_api.get(f"{MODEL}/alias-history", params={"alias": "canary"})
    ).json()
    assert [(m["from_version"], m["to_version"]) for m in only_canary] == [(None, 3)]

    audited = (
        await modelcycle_api.get("/api/v1/audit", params={"target": "model:chat/alias:"})
    ).json()["data"]
    assert [entry["action"] for entry in audited] == ["alias.set"] * 5 + ["alias.delete"]


async def test_bad_alias_requests_are_refused_and_change_nothing(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    await three_versions(modelcycle_api)

    missing_version = error_of(
        await modelcycle_api.put(f"{MODEL}/aliases/production", json={"version": 7}), 404
    )
    assert "7" in missing_version["message"]
    error_of(
        await modelcycle_api.put("/api/v1/models/ghost/aliases/production", json={"version": 1}),
        404,
    )
    unknown = error_of(await modelcycle_api.get(f"{MODEL}/aliases/nope"), 404)
    assert unknown["type"] == "not_found_error"
    assert "nope" in unknown["message"]
    error_of(await modelcycle_api.delete(f"{MODEL}/aliases/nope"), 404)
    invalid = error_of(
        await modelcycle_api.put(f"{MODEL}/aliases/Prod%20Main", json={"version": 1}), 400
    )
    assert invalid["param"] == "alias"

    assert (await modelcycle_api.get(f"{MODEL}/aliases")).json() == []
    assert (await modelcycle_api.get(f"{MODEL}/alias-history")).json() == []
