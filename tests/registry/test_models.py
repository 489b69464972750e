"""Models: create, read, update, 404/409 errors, and cursor pagination."""

from __future__ import annotations

import base64
from typing import Any

import httpx


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    return dict(error)


async def walk(api: httpx.AsyncClient, path: str, limit: int) -> list[list[Any]]:
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await api.get(path, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["data"]) <= limit
        pages.append(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "pagination does not end"


async def test_create_get_update_a_model(modelcycle_api: httpx.AsyncClient) -> None:
    created = await modelcycle_api.post(
        "/api/v1/models",
        json={"name": "support-bot", "description": "answers tickets", "metadata": {"team": "cx"}},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["description"], body["metadata"]) == (
        "support-bot",
        "answers tickets",
        {"team": "cx"},
    )
    assert body["latest_version"] is None
    assert body["aliases"] == {}

    updated = await modelcycle_api.patch(
        "/api/v1/models/support-bot", json={"description": "answers tickets fast"}
    )
    assert updated.status_code == 200
    assert updated.json()["description"] == "answers tickets fast"
    assert updated.json()["metadata"] == {"team": "cx"}
    fetched = (await modelcycle_api.get("/api/v1/models/support-bot")).json()
    assert fetched["description"] == "answers tickets fast"

    entries = await modelcycle_api.get("/api/v1/audit", params={"target": "model:support-bot"})
    assert [e["action"] for e in entries.json()["data"]] == ["model.create", "model.update"]


async def test_creating_a_model_twice_is_409(modelcycle_api: httpx.AsyncClient) -> None:
    first = await modelcycle_api.post("/api/v1/models", json={"name": "dup"})
    assert first.status_code == 201
    error = error_of(await modelcycle_api.post("/api/v1/models", json={"name": "dup"}), 409)
    assert error["type"] == "conflict_error"
    assert "dup" in error["message"]
    listed = (await modelcycle_api.get("/api/v1/models")).json()["data"]
    assert [m["name"] for m in listed] == ["dup"]


NOT_FOUND = [
    ("GET", "/api/v1/models/ghost", None),
    ("PATCH", "/api/v1/models/ghost", {"description": "x"}),
    ("DELETE", "/api/v1/models/ghost", None),
    ("GET", "/api/v1/models/ghost/versions", None),
    ("GET", "/api/v1/models/ghost/versions/1", None),
    ("GET", "/api/v1/models/ghost/aliases", None),
    ("GET", "/api/v1/models/ghost/aliases/production", None),
    ("GET", "/api/v1/models/ghost/alias-history", None),
    ("GET", "/api/v1/models/real/versions/2", None),
    ("DELETE", "/api/v1/models/real/versions/2", None),
    ("POST", "/api/v1/models/real/versions/2/archive", None),
    ("POST", "/api/v1/models/real/versions/2/restore", None),
    ("GET", "/api/v1/models/real/versions/2/lineage", None),
    ("GET", "/api/v1/models/real/aliases/production", None),
    ("PUT", "/api/v1/models/real/aliases/production", {"version": 2}),
    ("DELETE", "/api/v1/models/real/aliases/production", None),
]


async def test_unknown_model_version_or_alias_is_404_json(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    created = await modelcycle_api.post(
        "/api/v1/models/real/versions", json={"source": "mock://x", "backend": "mock"}
    )
    assert created.status_code == 201
    for method, path, body in NOT_FOUND:
        response = await modelcycle_api.request(method, path, json=body)
        error = error_of(response, 404)
        assert error["type"] == "not_found_error", f"{method} {path}"
        assert ("ghost" if "ghost" in path else "real") in error["message"], f"{method} {path}"
    assert [m["name"] for m in (await modelcycle_api.get("/api/v1/models")).json()["data"]] == [
        "real"
    ]


async def test_models_paginate_every_item_exactly_once(modelcycle_api: httpx.AsyncClient) -> None:
    names = [f"model-{index:02d}" for index in range(7)]
    for name in names:
        assert (await modelcycle_api.post("/api/v1/models", json={"name": name})).status_code == 201

    pages = await walk(modelcycle_api, "/api/v1/models", limit=3)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [model["name"] for page in pages for model in page] == names
    exact = await walk(modelcycle_api, "/api/v1/models", limit=7)
    assert [len(page) for page in exact] == [7]


async def test_versions_paginate_every_item_exactly_once(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    for index in range(7):
        response = await modelcycle_api.post(
            "/api/v1/models/paged/versions",
            json={"source": f"mock://{index}", "backend": "mock"},
        )
        assert response.status_code == 201

    pages = await walk(modelcycle_api, "/api/v1/models/paged/versions", limit=2)

    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert [v["version"] for page in pages for v in page] == list(range(1, 8))
    assert [v["source"] for page in pages for v in page] == [f"mock://{i}" for i in range(7)]


BAD_CURSORS = [
    "not a cursor!",
    base64.urlsafe_b64encode(b"x:5").decode(),
    base64.urlsafe_b64encode(b"k:-3").decode(),
    base64.urlsafe_b64encode(b"k:abc").decode(),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
]


async def test_a_bad_cursor_is_400_naming_the_cursor(modelcycle_api: httpx.AsyncClient) -> None:
    created = await modelcycle_api.post(
        "/api/v1/models/m/versions", json={"source": "mock://x", "backend": "mock"}
    )
    assert created.status_code == 201
    for path in ("/api/v1/models", "/api/v1/models/m/versions", "/api/v1/keys", "/api/v1/audit"):
        for cursor in BAD_CURSORS:
            response = await modelcycle_api.get(path, params={"cursor": cursor})
            assert response.status_code == 400, f"{path} cursor={cursor!r}: {response.text}"
            assert error_of(response, 400)["param"] == "cursor", f"{path} cursor={cursor!r}"


async def test_a_bad_page_size_is_400_naming_the_limit(modelcycle_api: httpx.AsyncClient) -> None:
    for limit in ("0", "501", "-1", "ten"):
        response = await modelcycle_api.get("/api/v1/models", params={"limit": limit})
        assert error_of(response, 400)["param"] == "limit", limit
