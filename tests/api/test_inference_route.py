"""``InferenceRoute``: its lean path answers exactly what FastAPI's own handler answers.

Every request is sent twice to the same app: once as it is (the lean path takes
the common case) and once with a dependency override, which sends everything
through FastAPI's handler. Status, headers that matter and bodies must match,
ids and timestamps aside.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel

from modelcycle.api import create_app
from modelcycle.api.deps import InferencePrincipalDep, get_services
from modelcycle.api.inference_route import InferenceRoute
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.services import Services
from modelcycle.testing import admin_of, make_key, register
from modelcycle.types import Role

MESSAGES = [{"role": "user", "content": "one two three"}]


@pytest.fixture
def modelcycle_database_url() -> str | None:
    return None  # the request path is database-agnostic


@pytest.fixture
async def app(modelcycle_services: Services) -> AsyncIterator[FastAPI]:
    admin = admin_of(modelcycle_services).principal
    version = register(modelcycle_services, admin, "bot", source="mock://echo")
    modelcycle_services.deployments.create(
        admin,
        DeploymentSpec(name="chat", routes=[Route(target=f"bot@{version.version}", weight=100)]),
    )
    built = create_app(modelcycle_services)
    yield built
    await modelcycle_services.gateway.aclose()


@pytest.fixture
def key(modelcycle_services: Services) -> str:
    return make_key(modelcycle_services, Role.APP).key


def masked(response: httpx.Response) -> tuple[int, str | None, str]:
    text = re.sub(r'"(chatcmpl|cmpl)-[0-9a-f]+"', '"ID"', response.text)
    text = re.sub(r'"created":\s*\d+', '"created":0', text)
    return response.status_code, response.headers.get("content-type"), text


async def both(app: FastAPI, method: str, path: str, **kwargs: Any) -> list[Any]:
    """The masked answer of the lean path, then of FastAPI's handler."""
    answers = []
    for full in (False, True):
        if full:
            app.dependency_overrides[get_services] = lambda: app.state.services
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                answers.append(masked(await client.request(method, path, **kwargs)))
        finally:
            app.dependency_overrides.clear()
    return answers


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain"}
CHARSET = {"Content-Type": "application/json; charset=utf-8"}


def raw(fields: str, content: str = "x", headers: dict[str, str] = JSON) -> dict[str, Any]:
    """A hand-written body: a chat request with ``fields`` added after its messages."""
    body = f'{{"model": "chat", "messages": [{{"role": "user", "content": "{content}"}}]{fields}}}'
    return {"content": body.encode(), "headers": headers}


CASES: list[tuple[str, dict[str, Any]]] = [
    ("whole answer", {"json": {"model": "chat", "messages": MESSAGES}}),
    ("streamed answer", {"json": {"model": "chat", "messages": MESSAGES, "stream": True}}),
    ("malformed JSON", {"content": b'{"model": "chat", ', "headers": JSON}),
    ("empty body", {"content": b"", "headers": JSON}),
    ("not JSON content type", raw("", headers=TEXT)),
    ("JSON with a charset", raw("", headers=CHARSET)),
    ("bad field", {"json": {"model": "chat", "messages": MESSAGES, "temperature": 5}}),
    ("wrong type", {"json": {"model": "chat", "messages": "hello"}}),
    ("no messages", {"json": {"model": "chat", "messages": []}}),
    ("unknown deployment", {"json": {"model": "nope", "messages": MESSAGES}}),
    ("NaN literal", raw(', "temperature": NaN')),
    ("integer past 64 bits", raw(', "max_tokens": 100000000000000000000000')),
    ("lone surrogate", raw("", content="\\ud800")),
    ("duplicate keys", raw(', "model": "nope"')),
    ("n > 1", {"json": {"model": "chat", "messages": MESSAGES, "n": 2}}),
]


@pytest.mark.parametrize(("case", "kwargs"), CASES, ids=[case for case, _ in CASES])
async def test_chat_answers_match_fastapis_own(
    app: FastAPI, key: str, case: str, kwargs: dict[str, Any]
) -> None:
    headers = {**bearer(key), **kwargs.pop("headers", {})}
    lean, full = await both(app, "POST", "/v1/chat/completions", headers=headers, **kwargs)
    assert lean == full, case
    assert lean[0] < 500, case


async def test_completions_match_too(app: FastAPI, key: str) -> None:
    body = {"model": "chat", "prompt": "a b c", "echo": True, "max_tokens": 2}
    lean, full = await both(app, "POST", "/v1/completions", headers=bearer(key), json=body)
    assert lean == full
    assert lean[0] == 200
    assert '"text":"a b ca b"' in lean[2]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer mc_wrong"}, {"Authorization": "Basic abc"}],
    ids=["no key", "bad key", "not bearer"],
)
async def test_authentication_comes_before_body_validation_on_both_paths(
    app: FastAPI, headers: dict[str, str]
) -> None:
    bad_body = {"model": "chat", "messages": "not a list"}
    lean, full = await both(app, "POST", "/v1/chat/completions", headers=headers, json=bad_body)
    assert lean == full
    assert lean[0] == 401
    malformed = await both(
        app, "POST", "/v1/chat/completions", headers={**headers, **JSON}, content=b"{"
    )
    assert malformed[0] == malformed[1]
    assert malformed[0][0] == 400  # a body that is not JSON is refused first, as FastAPI does


class Echo(BaseModel):
    text: str


async def test_an_endpoint_with_parameters_it_does_not_know_is_left_to_fastapi(
    modelcycle_services: Services, key: str
) -> None:
    router = APIRouter(route_class=InferenceRoute)

    @router.post("/echo")
    async def echo(
        body: Echo, principal: InferencePrincipalDep, shout: Annotated[bool, Query()] = False
    ) -> dict[str, str]:
        return {"text": body.text.upper() if shout else body.text, "by": principal.key_name}

    app = FastAPI()
    app.state.services = modelcycle_services
    app.include_router(router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=bearer(key)
    ) as client:
        answer = await client.post("/echo", params={"shout": "true"}, json={"text": "hi"})

    assert answer.status_code == 200
    assert answer.json()["text"] == "HI"  # the query parameter was honoured


@pytest.mark.parametrize(
    "template",
    [
        "Bearer {key}",
        "bearer {key}",
        "BEARER {key}",
        "Bearer  {key}",
        "Bearer {key} ",
        "Bearer\t{key}",
        "Basic {key}",
        "Token {key}",
        "Bearer",
        "Bearer ",
        "{key}",
    ],
)
async def test_the_bearer_header_is_read_as_the_management_api_reads_it(
    app: FastAPI, key: str, template: str
) -> None:
    headers = {"Authorization": template.format(key=key)}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers
    ) as client:
        inference = await client.get("/v1/models")
        management = await client.get("/api/v1/whoami")  # FastAPI's HTTPBearer
    assert inference.status_code == management.status_code
    assert inference.status_code in (200, 401)
