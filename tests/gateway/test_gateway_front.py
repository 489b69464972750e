"""The OpenAI routes' common case is answered ahead of the middleware stack, with the same answers.

The stack is wrapped in a counter once built: a lean request never enters it;
whatever the lean path cannot or must not answer goes through it, as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.harness import Env
from modelcycle.api import create_app
from modelcycle.api.front import InferenceApp

USER = [{"role": "user", "content": "hi"}]


class Counted:
    """The app's middleware stack, counting the requests that enter it."""

    def __init__(self, app: ASGIApp):
        self.app, self.calls = app, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await self.app(scope, receive, send)


@pytest.fixture
async def stack(env: Env) -> Counted:
    env.deploy("chat", (env.version("bot"), 100))
    app = env.app
    assert isinstance(app, InferenceApp)
    assert (await env.http().get("/v1/models")).status_code == 200  # builds the stack
    assert app.middleware_stack is not None
    counted = Counted(app.middleware_stack)
    app.middleware_stack = counted
    return counted


async def test_a_chat_completion_is_answered_without_the_middleware_stack(
    env: Env, stack: Counted
) -> None:
    response = await env.http().post(
        "/v1/chat/completions", json={"model": "chat", "messages": USER}
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]
    assert response.headers["x-modelcycle-version"].startswith("bot@")
    assert stack.calls == 0
    completion = await env.http().post("/v1/completions", json={"model": "chat", "prompt": "hi"})
    assert completion.status_code == 200, completion.text
    assert stack.calls == 0


async def test_errors_raised_on_the_lean_path_are_the_apps_own_answers(
    env: Env, stack: Counted
) -> None:
    response = await env.http().post(
        "/v1/chat/completions", json={"model": "nowhere", "messages": USER}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    unauthorised = await env.http("mc_wrong_key").post(
        "/v1/chat/completions", json={"model": "chat", "messages": USER}
    )
    assert unauthorised.status_code == 401
    assert unauthorised.json()["error"]["type"]
    assert stack.calls == 0  # answered by the lean path's own exception layer


async def test_a_declined_request_is_replayed_through_the_stack(env: Env, stack: Counted) -> None:
    invalid = await env.http().post(
        "/v1/chat/completions", json={"model": "chat", "messages": [], "temperature": 9}
    )
    assert invalid.status_code == 400
    assert invalid.json()["error"]["param"] in {"messages", "temperature"}
    assert stack.calls == 1  # FastAPI's validation answered, from the replayed body

    as_text = await env.http().post(
        "/v1/chat/completions",
        content=b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}',
        headers={"content-type": "text/plain"},
    )
    assert as_text.status_code == 400, as_text.text
    assert as_text.json()["error"]["type"] == "invalid_request_error"
    assert stack.calls == 2


async def test_a_body_of_undeclared_length_takes_the_stack_and_its_limit(
    env: Env, stack: Counted
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "chat", "messages": '
        yield b'[{"role": "user", "content": "hi"}]}'

    response = await env.http().post(
        "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert stack.calls == 1

    limit = env.services.settings.max_body_bytes
    declared_too_large = await env.http().post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "x" * limit}]},
    )
    assert declared_too_large.status_code == 413
    assert stack.calls == 2


async def test_an_unexpected_error_on_the_lean_path_is_a_json_500(
    env: Env, stack: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(env.services.gateway, "generate", broken)
    transport = httpx.ASGITransport(app=env.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://test",
        headers={"Authorization": f"Bearer {env.app_key.key}"},
    ) as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": "chat", "messages": USER}
        )
    assert response.status_code == 500
    assert "error" in response.json()
    assert "a bug" not in response.text  # no internals in the answer
    assert stack.calls == 0


async def test_other_middleware_turns_the_front_off(env: Env) -> None:
    app = create_app(env.services)
    assert isinstance(app, InferenceApp)
    app.add_middleware(CORSMiddleware, allow_origins=["https://app.example"])
    env.app = app
    env.deploy("chat", (env.version("bot"), 100))
    response = await env.http().post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": USER},
        headers={"origin": "https://app.example"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert app.lean_routes == {}
