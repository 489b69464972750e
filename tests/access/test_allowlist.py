"""Per-key deployment allowlists: a limited key calls, lists and tokenizes only its deployments.

Any other deployment answers exactly as one that does not exist (OpenAI's 404
``model_not_found``), so a limited key learns nothing of the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from modelcycle.access import KeyCreate
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.services import Services
from modelcycle.testing import KeyPair, register
from modelcycle.types import Role

ClientFactory = Callable[[str | None], httpx.AsyncClient]
MISSING = "never-deployed"


@pytest.fixture
def modelcycle_database_url() -> str | None:
    """SQLite: the JSON column on PostgreSQL is covered by test_keys' round trips."""
    return None


@pytest.fixture
def deployed(modelcycle_services: Services, modelcycle_admin: KeyPair) -> list[str]:
    register(modelcycle_services, modelcycle_admin.principal, "bot", source="mock://echo")
    for name in ("alpha", "beta"):
        spec = DeploymentSpec(name=name, routes=[Route(target="bot@1", weight=100)])
        modelcycle_services.deployments.create(modelcycle_admin.principal, spec)
    return ["alpha", "beta"]


@pytest.fixture
def alpha_key(
    modelcycle_services: Services, modelcycle_admin: KeyPair, deployed: list[str]
) -> KeyPair:
    created = modelcycle_services.access.create_key(
        modelcycle_admin.principal,
        KeyCreate(name="alpha-only", role=Role.APP, deployments=["alpha"]),
    )
    return KeyPair(created.key, modelcycle_services.access.authenticate(created.key))


def calls(model: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route that names a deployment: method, path and request options."""
    chat = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return [
        ("POST", "/v1/chat/completions", {"json": chat}),
        ("POST", "/v1/chat/completions", {"json": {**chat, "stream": True}}),
        ("POST", "/v1/completions", {"json": {"model": model, "prompt": "hi"}}),
        ("POST", "/v1/embeddings", {"json": {"model": model, "input": "hi"}}),
        ("POST", "/tokenize", {"json": {"model": model, "prompt": "hi"}}),
        ("POST", "/detokenize", {"json": {"model": model, "tokens": [0]}}),
        ("GET", "/tokenizer_info", {"params": {"model": model}}),
    ]


def not_found(response: httpx.Response, model: str) -> dict[str, Any]:
    assert response.status_code == 404, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert error["message"] == (
        f"The model '{model}' does not exist or you do not have access to it."
    )
    return error


async def test_a_limited_key_calls_its_deployment_and_no_other(
    alpha_key: KeyPair, client_for: ClientFactory
) -> None:
    client = client_for(alpha_key.key)
    for (method, path, options), (_, _, other) in zip(calls("alpha"), calls("beta"), strict=True):
        allowed = await client.request(method, path, **options)
        assert allowed.status_code == 200, (path, allowed.text)
        not_found(await client.request(method, path, **other), "beta")


async def test_another_deployment_looks_exactly_like_a_missing_one(
    alpha_key: KeyPair, client_for: ClientFactory
) -> None:
    client = client_for(alpha_key.key)
    for (method, path, hidden), (_, _, missing) in zip(calls("beta"), calls(MISSING), strict=True):
        theirs = not_found(await client.request(method, path, **hidden), "beta")
        absent = not_found(await client.request(method, path, **missing), MISSING)
        assert {**theirs, "message": ""} == {**absent, "message": ""}, path


async def test_models_lists_only_the_allowed_deployments(
    alpha_key: KeyPair, modelcycle_admin: KeyPair, client_for: ClientFactory
) -> None:
    limited = await client_for(alpha_key.key).get("/v1/models")
    unlimited = await client_for(modelcycle_admin.key).get("/v1/models")

    assert [m["id"] for m in limited.json()["data"]] == ["alpha"]
    assert {m["id"] for m in unlimited.json()["data"]} == {"alpha", "beta"}


async def test_the_allowlist_shows_in_listings_whoami_and_the_audit_log(
    alpha_key: KeyPair, modelcycle_api: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    key_id = alpha_key.principal.key_id
    shown = (await modelcycle_api.get(f"/api/v1/keys/{key_id}")).json()
    listed = {k["id"]: k for k in (await modelcycle_api.get("/api/v1/keys")).json()["data"]}
    me = (await client_for(alpha_key.key).get("/api/v1/whoami")).json()
    audit = await modelcycle_api.get(
        "/api/v1/audit", params={"target": f"key:{alpha_key.principal.prefix}"}
    )

    assert shown["deployments"] == listed[key_id]["deployments"] == ["alpha"]
    assert me["deployments"] == ["alpha"]
    assert audit.json()["data"][0]["after"]["deployments"] == ["alpha"]
    admin_entry = listed[min(listed)]
    assert admin_entry["deployments"] is None  # the bootstrap key may call everything


async def test_the_allowlist_limits_calls_not_the_management_api(
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
    deployed: list[str],
    client_for: ClientFactory,
) -> None:
    created = modelcycle_services.access.create_key(
        modelcycle_admin.principal,
        KeyCreate(name="ops", role=Role.VIEWER, deployments=["alpha"]),
    )
    client = client_for(created.key)

    beta = await client.get("/api/v1/deployments/beta")
    chat = await client.post(
        "/v1/chat/completions",
        json={"model": "beta", "messages": [{"role": "user", "content": "hi"}]},
    )

    assert beta.status_code == 200
    assert beta.json()["name"] == "beta"
    not_found(chat, "beta")


@pytest.mark.parametrize(
    ("deployments", "param"),
    [
        ([], "deployments"),
        (["Not A Name"], "deployments.0"),
        ([f"d{i}" for i in range(101)], "deployments"),
        ("alpha", "deployments"),
    ],
)
async def test_a_bad_allowlist_is_a_400_naming_the_field(
    modelcycle_api: httpx.AsyncClient, deployments: Any, param: str
) -> None:
    response = await modelcycle_api.post(
        "/api/v1/keys", json={"name": "x", "role": "app", "deployments": deployments}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
