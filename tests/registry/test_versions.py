"""Registering immutable versions, their parents and lineage, through the API."""

from __future__ import annotations

from typing import Any

import httpx

from modelcycle.testing import KeyPair

VERSIONS = "/api/v1/models/{}/versions"


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    return dict(error)


async def register(api: httpx.AsyncClient, model: str, **body: Any) -> dict[str, Any]:
    payload = {"source": "mock://echo", "backend": "mock", **body}
    response = await api.post(VERSIONS.format(model), json=payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_version_numbers_increase_and_every_field_round_trips(
    modelcycle_api: httpx.AsyncClient, modelcycle_admin: KeyPair
) -> None:
    bodies = [
        {
            "source": "/models/gemma.gguf",
            "backend": "llamacpp",
            "params": {"temperature": 0.2, "stop": ["\nQ:"], "system": "Be brief."},
            "metadata": {"quantization": "Q4_K_M", "tags": ["base"]},
        },
        {
            "source": "hf://org/model",
            "backend": "transformers",
            "params": {"adapter": "lora-7", "max_tokens": 64},
            "metadata": {"nested": {"a": [1, 2, {"b": None}]}},
            "description": "tuned on support tickets",
        },
        {"source": "https://upstream.example/v1", "backend": "openai"},
    ]
    created = [await register(modelcycle_api, "support-bot", **body) for body in bodies]

    assert [version["version"] for version in created] == [1, 2, 3]
    for body, version in zip(bodies, created, strict=True):
        fetched = await modelcycle_api.get(f"{VERSIONS.format('support-bot')}/{version['version']}")
        assert fetched.status_code == 200
        got = fetched.json()
        assert got == version
        assert got["model"] == "support-bot"
        assert got["source"] == body["source"]
        assert got["backend"] == body["backend"]
        assert got["params"] == body.get("params", {})
        assert got["status"] == "active"
        assert got["parent"] is None
        assert got["created_by"] == f"key:{modelcycle_admin.principal.prefix}"
        expected_meta = dict(body.get("metadata", {}))
        if "description" in body:
            expected_meta["description"] = body["description"]
        assert got["metadata"] == expected_meta

    model = (await modelcycle_api.get("/api/v1/models/support-bot")).json()
    assert model["latest_version"] == 3
    listed = (await modelcycle_api.get(VERSIONS.format("support-bot"))).json()
    assert [v["version"] for v in listed["data"]] == [1, 2, 3]
    assert listed["next_cursor"] is None

    entries = (
        await modelcycle_api.get("/api/v1/audit", params={"action": "version.register"})
    ).json()["data"]
    assert [entry["target"] for entry in entries] == [f"model:support-bot@{n}" for n in (1, 2, 3)]
    assert entries[0]["after"]["params"] == bodies[0]["params"]


async def test_a_version_cannot_be_changed_through_any_method(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    original = await register(modelcycle_api, "frozen", params={"temperature": 0.1})
    path = f"{VERSIONS.format('frozen')}/1"

    for method in ("PATCH", "PUT", "POST"):
        response = await modelcycle_api.request(
            method, path, json={"source": "mock://evil", "params": {"temperature": 2.0}}
        )
        error = error_of(response, 405)
        assert error["type"] == "invalid_request_error", method
        # Starlette lists the methods of the first route on the path only (GET here).
        allowed = {part.strip() for part in response.headers.get("allow", "").split(",")}
        assert "GET" in allowed, method
        assert method not in allowed, method
    assert (await modelcycle_api.get(path)).json() == original


async def test_parent_and_lineage_chain_across_models(modelcycle_api: httpx.AsyncClient) -> None:
    await register(modelcycle_api, "base")
    await register(modelcycle_api, "base", parent={"model": "base", "version": 1})
    tuned = await register(modelcycle_api, "tuned", parent={"model": "base", "version": 2})
    child = await register(modelcycle_api, "tuned", parent={"model": "tuned", "version": 1})

    assert tuned["parent"] == {"model": "base", "version": 2}
    assert child["parent"] == {"model": "tuned", "version": 1}

    lineage = await modelcycle_api.get(f"{VERSIONS.format('tuned')}/2/lineage")
    assert lineage.status_code == 200, lineage.text
    body = lineage.json()
    assert body["version"] == {"model": "tuned", "version": 2}
    assert body["ancestors"] == [
        {"model": "tuned", "version": 1},
        {"model": "base", "version": 2},
        {"model": "base", "version": 1},
    ]
    assert [(e["relation"], e["target_kind"], e["target_ref"]) for e in body["edges"]] == [
        ("parent", "model_version", "tuned@1")
    ]

    root = (await modelcycle_api.get(f"{VERSIONS.format('base')}/1/lineage")).json()
    assert root["ancestors"] == []
    assert root["edges"] == []


async def test_an_unknown_parent_is_refused_naming_the_parent(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    await register(modelcycle_api, "lineage-src")
    for parent in (
        {"model": "lineage-src", "version": 9},
        {"model": "no-such-model", "version": 1},
    ):
        response = await modelcycle_api.post(
            VERSIONS.format("lineage-src"),
            json={"source": "mock://echo", "backend": "mock", "parent": parent},
        )
        error = error_of(response, 400)
        assert error["param"] == "parent", parent
        assert f"{parent['model']}@{parent['version']}" in error["message"]
    versions = (await modelcycle_api.get(VERSIONS.format("lineage-src"))).json()["data"]
    assert [v["version"] for v in versions] == [1]
