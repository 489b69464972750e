"""Bad input on ``/v1`` is an OpenAI-style 4xx naming the problem, never a 5xx."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.harness import Env
from modelcycle.testing import make_key
from modelcycle.types import Role

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def chat(env: Env) -> str:
    env.deploy("chat", (env.version("bot"), 100))
    return "chat"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "chat", "messages": []}, "messages"),
        ({"model": "chat"}, "messages"),
        ({"messages": USER}, "model"),
        ({"model": "chat", "messages": USER, "temperature": 5}, "temperature"),
        ({"model": "chat", "messages": USER, "temperature": "hot"}, "temperature"),
        ({"model": "chat", "messages": USER, "top_p": 1.5}, "top_p"),
        ({"model": "chat", "messages": USER, "max_tokens": 0}, "max_tokens"),
        ({"model": "chat", "messages": USER, "max_completion_tokens": -1}, "max_completion_tokens"),
        ({"model": "chat", "messages": USER, "n": 0}, "n"),
        ({"model": "chat", "messages": USER, "seed": 2**64}, "seed"),
        ({"model": "chat", "messages": [{"role": "user", "content": 42}]}, "messages.0.content"),
        ({"model": "chat", "messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": "chat", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"model": "chat", "messages": [{"content": "x"}]}, "messages.0.role"),
        ({"model": "chat", "messages": "hello"}, "messages"),
        ({"model": "chat", "messages": [{"role": "system", "content": "only"}]}, "messages"),
        (
            {
                "model": "chat",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ],
            },
            "messages",
        ),
    ],
)
async def test_invalid_chat_requests_are_400(
    env: Env, chat: str, body: dict[str, Any], param: str
) -> None:
    response = await env.http().post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "chat", "prompt": []}, "prompt"),
        ({"model": "chat", "prompt": "a", "logprobs": 99}, "logprobs"),
        ({"model": "chat", "prompt": "a", "best_of": 3}, "best_of"),
        ({"model": "chat", "prompt": 42}, "prompt"),
    ],
)
async def test_invalid_completion_requests_are_400(
    env: Env, chat: str, body: dict[str, Any], param: str
) -> None:
    response = await env.http().post("/v1/completions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_malformed_json_is_400(env: Env, chat: str) -> None:
    response = await env.http().post(
        "/v1/chat/completions",
        content=b'{"model": "chat", "messages": [',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "request body is not valid JSON"


async def test_lone_surrogates_are_400_not_an_engine_failure(env: Env, chat: str) -> None:
    response = await env.http().post(
        "/v1/chat/completions",
        content=b'{"model": "chat", "messages": [{"role": "user", "content": "\\ud800 x"}]}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "messages.0.content is not valid Unicode" in response.json()["error"]["message"]


async def test_unknown_fields_are_ignored_like_openai_does(env: Env, chat: str) -> None:
    response = await env.http().post(
        "/v1/chat/completions",
        json={
            "model": "chat",
            "messages": [{"role": "user", "content": "hi", "future_field": 1}],
            "logit_bias": {"50256": -100},
            "parallel_tool_calls": False,
            "something_new": {"x": 1},
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "hi"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Bearer mc_abcdefgh_" + "A" * 32}],
)
async def test_missing_or_wrong_keys_are_401(env: Env, chat: str, headers: dict[str, str]) -> None:
    client = env.http()
    client.headers.pop("Authorization")
    response = await client.post(
        "/v1/chat/completions", json={"model": "chat", "messages": USER}, headers=headers
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert (await client.get("/v1/models", headers=headers)).status_code == 401


async def test_an_app_key_calls_v1_but_not_the_management_api(env: Env, chat: str) -> None:
    client = env.http(env.app_key.key)
    assert (await client.get("/v1/models")).status_code == 200
    refused = await client.get("/api/v1/deployments")
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_error"


async def test_another_projects_deployment_is_model_not_found(env: Env, chat: str) -> None:
    from modelcycle.testing import make_project

    outsider = make_key(env.services, Role.ADMIN, make_project(env.services))
    response = await env.http(outsider.key).post(
        "/v1/chat/completions", json={"model": "chat", "messages": USER}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert (await env.http(outsider.key).get("/v1/models")).json()["data"] == []


async def test_a_body_over_the_limit_is_413(env: Env, chat: str) -> None:
    big = "x" * (env.services.settings.max_body_bytes + 1)
    response = await env.http().post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": big}]},
    )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"
