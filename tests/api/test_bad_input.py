"""Bad input gets a 4xx with the shared JSON error shape, names the field, and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from modelcycle.api import create_app
from modelcycle.registry import ModelCreate
from modelcycle.services import Services
from modelcycle.settings import Settings
from modelcycle.store.tables import AuditEntryRow, ModelRow
from modelcycle.testing import admin_of, make_services, make_settings

JSON = {"content-type": "application/json"}
VERSION = {"source": "mock://x", "backend": "mock"}

BODY_ENDPOINTS = [
    ("POST", "/api/v1/models", {"name": "ok-name"}),
    ("PATCH", "/api/v1/models/base", {"description": "d"}),
    ("POST", "/api/v1/models/base/versions", VERSION),
    ("PUT", "/api/v1/models/base/aliases/production", {"version": 1}),
    ("POST", "/api/v1/keys", {"name": "k", "role": "viewer"}),
    ("POST", "/api/v1/projects", {"name": "team-x"}),
]


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    return dict(error)


def counts(services: Services) -> tuple[int, int]:
    with services.store.read() as session:
        models = session.execute(select(func.count(ModelRow.id))).scalar_one()
        audit = session.execute(select(func.count(AuditEntryRow.seq))).scalar_one()
    return int(models), int(audit)


@pytest.fixture
async def api(
    modelcycle_api: httpx.AsyncClient, modelcycle_services: Services
) -> AsyncIterator[httpx.AsyncClient]:
    """The admin client, with model ``base`` at version 1; fails if bad input changed anything."""
    created = await modelcycle_api.post("/api/v1/models/base/versions", json=VERSION)
    assert created.status_code == 201
    before = counts(modelcycle_services)
    yield modelcycle_api
    assert counts(modelcycle_services) == before, "a refused request wrote something"


async def test_malformed_or_non_object_bodies_are_400_on_every_body_endpoint(
    api: httpx.AsyncClient,
) -> None:
    for raw in (b'{"name": "x"', b"{name: 'x'}", b"not json", b'{"a": 1}}', b"\xff\xfe"):
        for method, path, _ in BODY_ENDPOINTS:
            response = await api.request(method, path, content=raw, headers=JSON)
            error = error_of(response, 400)
            assert "JSON" in error["message"] or "parsing" in error["message"], (method, path)
    for raw in (b"[]", b'"text"', b"42", b"null"):
        for method, path, _ in BODY_ENDPOINTS:
            error_of(await api.request(method, path, content=raw, headers=JSON), 400)
    error_of(await api.post("/api/v1/models", content=b'{"name": "x"}'), 400)
    plain = {"content-type": "text/plain"}
    error_of(await api.post("/api/v1/models", content=b'{"name": "x"}', headers=plain), 400)


WRONG_TYPES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/api/v1/models", {"name": 123}, "name"),
    ("POST", "/api/v1/models", {"name": "ok", "metadata": ["a"]}, "metadata"),
    ("POST", "/api/v1/models", {"name": "ok", "description": {"a": 1}}, "description"),
    ("PATCH", "/api/v1/models/base", {"metadata": "tags"}, "metadata"),
    ("POST", "/api/v1/models/base/versions", {**VERSION, "source": ["x"]}, "source"),
    ("POST", "/api/v1/models/base/versions", {**VERSION, "backend": "vllm2"}, "backend"),
    ("POST", "/api/v1/models/base/versions", {**VERSION, "params": "hot"}, "params"),
    ("POST", "/api/v1/models/base/versions", {"backend": "mock"}, "source"),
    ("POST", "/api/v1/models/base/versions", {**VERSION, "source": ""}, "source"),
    ("POST", "/api/v1/models/base/versions", {**VERSION, "parent": 1}, "parent"),
    (
        "POST",
        "/api/v1/models/base/versions",
        {**VERSION, "parent": {"model": "base", "version": 0}},
        "parent.version",
    ),
    ("PUT", "/api/v1/models/base/aliases/production", {"version": "one"}, "version"),
    ("PUT", "/api/v1/models/base/aliases/production", {"version": 0}, "version"),
    ("PUT", "/api/v1/models/base/aliases/production", {"version": 1.5}, "version"),
    ("PUT", "/api/v1/models/base/aliases/production", {}, "version"),
    ("POST", "/api/v1/keys", {"name": "k", "role": "superuser"}, "role"),
    ("POST", "/api/v1/keys", {"name": "", "role": "viewer"}, "name"),
    ("POST", "/api/v1/keys", {"name": "k", "role": "viewer", "expires_at": "soon"}, "expires_at"),
]


async def test_wrong_types_are_400_naming_the_field(api: httpx.AsyncClient) -> None:
    for method, path, body, param in WRONG_TYPES:
        error = error_of(await api.request(method, path, json=body), 400)
        assert error["param"] == param, (method, path, body)
        assert param.split(".")[0] in error["message"], (method, path, body)


async def test_unknown_fields_are_refused_naming_them(api: httpx.AsyncClient) -> None:
    for method, path, body in BODY_ENDPOINTS:
        response = await api.request(method, path, json={**body, "colour": "blue"})
        error = error_of(response, 400)
        assert error["param"] == "colour", (method, path)
    nested = await api.post(
        "/api/v1/models/base/versions",
        json={**VERSION, "parent": {"model": "base", "version": 1, "colour": "blue"}},
    )
    assert error_of(nested, 400)["param"] == "parent.colour"


BAD_NAMES = ["Bot", "my bot", "x" * 200, "-lead", "trail-", "", "a/b", "ünï", "a" * 65]


async def test_invalid_names_are_400_naming_the_field(api: httpx.AsyncClient) -> None:
    for name in BAD_NAMES:
        body_error = error_of(await api.post("/api/v1/models", json={"name": name}), 400)
        assert body_error["param"] == "name", name
        project_error = error_of(await api.post("/api/v1/projects", json={"name": name}), 400)
        assert project_error["param"] == "name", name
        if name and "/" not in name:
            path = httpx.URL(f"http://t/api/v1/models/{name}/versions").raw_path.decode()
            path_error = error_of(await api.post(path, json=VERSION), 400)
            assert path_error["param"] == "name", name
            alias_path = httpx.URL(f"http://t/api/v1/models/base/aliases/{name}").raw_path
            alias_error = error_of(await api.put(alias_path.decode(), json={"version": 1}), 400)
            assert alias_error["param"] == "alias", name


async def test_values_a_database_would_change_or_refuse_are_400(api: httpx.AsyncClient) -> None:
    raw_bodies = [
        ("POST", "/api/v1/models", b'{"name": "n", "metadata": {"a": NaN}}', "metadata"),
        ("POST", "/api/v1/models", b'{"name": "n", "metadata": {"a": Infinity}}', "metadata"),
        ("POST", "/api/v1/models", b'{"name": "n", "metadata": {"\\ud800": 1}}', "metadata"),
        ("POST", "/api/v1/models", b'{"name": "n", "metadata": {"a": "\\udfff"}}', "metadata"),
        (
            "POST",
            "/api/v1/models/base/versions",
            b'{"source": "s", "backend": "mock", "params": {"t": -Infinity}}',
            "params",
        ),
        (
            "POST",
            "/api/v1/models",
            b'{"name": "n", "metadata": {"a": 1' + b"0" * 30 + b"}}",
            "metadata",
        ),
        ("POST", "/api/v1/models", b'{"name": "n", "description": "a\\u0000b"}', "description"),
        ("POST", "/api/v1/keys", b'{"name": "a\\u0000", "role": "viewer"}', "name"),
        ("PUT", "/api/v1/models/base/aliases/p", b'{"version": 1' + b"0" * 30 + b"}", "version"),
        (
            "POST",
            "/api/v1/models/base/versions",
            b'{"source": "s", "backend": "mock", '
            b'"parent": {"model": "base", "version": 4294967296}}',
            "parent.version",
        ),
    ]
    for method, path, raw, param in raw_bodies:
        response = await api.request(method, path, content=raw, headers=JSON)
        error = error_of(response, 400)
        if error["param"] is None:
            # NUL is refused for the whole body at once; the message names the field.
            assert error["message"].startswith(param), raw
        else:
            assert error["param"].split(".")[0] == param.split(".")[0], raw


async def test_deeply_nested_json_is_400(api: httpx.AsyncClient) -> None:
    for depth in (300, 100_000):
        raw = b'{"name": "deep", "metadata": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
        error_of(await api.post("/api/v1/models", content=raw, headers=JSON), 400)
    # Reasonable nesting still passes validation.
    nested: Any = {"leaf": [1, 2.5, "x", None, True]}
    for _ in range(10):
        nested = {"a": [nested]}
    assert ModelCreate(name="fine", metadata=nested).metadata == nested


async def test_an_expiry_beyond_the_calendar_is_400(api: httpx.AsyncClient) -> None:
    for when in ("9999-12-31T23:59:59-05:00", "10000-01-01T00:00:00Z"):
        response = await api.post(
            "/api/v1/keys", json={"name": "k", "role": "viewer", "expires_at": when}
        )
        assert error_of(response, 400)["param"] == "expires_at", when


OUT_OF_RANGE = [
    ("/api/v1/models/base/versions/2147483648", "version"),
    ("/api/v1/models/base/versions/0", "version"),
    ("/api/v1/models/base/versions/one", "version"),
    ("/api/v1/models/base/versions/1/lineage?x=1", None),
    ("/api/v1/keys/2147483648", "key_id"),
    ("/api/v1/audit/99999999999999999999999", "seq"),
]


async def test_out_of_range_ids_are_400_and_unknown_routes_404(api: httpx.AsyncClient) -> None:
    for path, param in OUT_OF_RANGE:
        if param is None:
            assert (await api.get(path)).status_code == 200, path
            continue
        assert error_of(await api.get(path), 400)["param"] == param, path
    for path in ("/api/v1/nope", "/api/v2/models", "/nothing/here", "/api/v1/models/base/x"):
        error_of(await api.get(path), 404)
    error_of(await api.post("/api/v1/nope", json={}), 404)


async def test_a_failed_registration_leaves_no_model_and_no_audit_entry(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(
        "/api/v1/models/fresh-model/versions",
        json={**VERSION, "parent": {"model": "base", "version": 99}},
    )
    assert error_of(response, 400)["param"] == "parent"
    error_of(await api.get("/api/v1/models/fresh-model"), 404)
    names = [m["name"] for m in (await api.get("/api/v1/models")).json()["data"]]
    assert names == ["base"]
    # The ``api`` fixture also checks that no model row and no audit entry were added.


@pytest.fixture
async def small_limit(
    modelcycle_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    settings = make_settings(
        tmp_path_factory.mktemp("limits"),
        modelcycle_settings.database_url,
        max_body_bytes=2048,
    )
    services = make_services(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)),
        base_url="http://modelcycle.test",
        headers={"Authorization": f"Bearer {admin_of(services).key}"},
    ) as client:
        yield client, services
    services.close()


def padded(size: int) -> bytes:
    head, tail = b'{"name": "big", "metadata": {"pad": "', b'"}}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


async def test_a_body_over_the_limit_is_413_json_with_content_length_or_chunked(
    small_limit: tuple[httpx.AsyncClient, Services],
) -> None:
    api, services = small_limit
    before = counts(services)

    declared = await api.post("/api/v1/models", content=padded(2049), headers=JSON)

    async def chunks() -> AsyncIterator[bytes]:
        body = padded(4000)
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    streamed = await api.post("/api/v1/models", content=chunks(), headers=JSON)

    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert "2048" in error["message"]
    assert "transfer-encoding" in streamed.request.headers
    assert "content-length" not in streamed.request.headers
    assert counts(services) == before

    at_limit = await api.post("/api/v1/models", content=padded(2048), headers=JSON)
    assert at_limit.status_code == 201, at_limit.text

    async def small_chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "streamed"'
        yield b', "description": "in pieces"}'

    ok = await api.post("/api/v1/models", content=small_chunks(), headers=JSON)
    assert ok.status_code == 201, ok.text
    assert ok.json()["description"] == "in pieces"
