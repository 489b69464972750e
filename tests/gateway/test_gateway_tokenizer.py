"""vLLM's ``/tokenize``, ``/detokenize`` and ``/tokenizer_info`` for local backends (mock here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from gateway.harness import Env
from modelcycle.api import create_app
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.testing import admin_of, make_services, make_settings, register


@pytest.fixture
def words(env: Env) -> str:
    env.deploy("words", (env.version("bot", "mock://echo", context_length=512), 100))
    return "words"


async def test_tokenize_then_detokenize_gives_the_text_back(env: Env, words: str) -> None:
    client = env.http()
    text = "Tokens come back  as they went\tin. "
    tokenized = await client.post("/tokenize", json={"model": words, "prompt": text})
    assert tokenized.status_code == 200, tokenized.text
    body = tokenized.json()
    assert body["count"] == len(body["tokens"]) == 8
    assert body["max_model_len"] == 512
    assert body["token_strs"] is None
    detokenized = await client.post("/detokenize", json={"model": words, "tokens": body["tokens"]})
    assert detokenized.json() == {"prompt": text}


async def test_the_count_matches_the_usage_of_a_completion(env: Env, words: str) -> None:
    client = env.http()
    prompt = "how many tokens is this"
    count = (await client.post("/tokenize", json={"model": words, "prompt": prompt})).json()
    answer = await env.openai().completions.create(model=words, prompt=prompt, max_tokens=1)
    assert answer.usage is not None
    assert count["count"] == answer.usage.prompt_tokens


async def test_messages_are_tokenized_as_the_chat_request_evaluates_them(
    env: Env, words: str
) -> None:
    response = await env.http().post(
        "/tokenize",
        json={
            "model": words,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "two words"},
            ],
        },
    )
    assert response.json()["count"] == 2  # the mock answers from the last user message


async def test_tokenizer_info_describes_the_primary_version(env: Env, words: str) -> None:
    await env.http().post("/tokenize", json={"model": words, "prompt": "a b c"})
    response = await env.http().get("/tokenizer_info", params={"model": words})
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["tokenizer_class"] == "MockWordTokenizer"
    assert info["model_max_length"] == 512
    assert info["vocab_size"] == 3
    assert info["add_bos_token"] is False


async def test_the_primary_route_answers_even_with_a_canary(env: Env) -> None:
    primary = env.version("first", "mock://echo", context_length=100)
    canary = env.version("second", "mock://echo", context_length=200)
    env.deploy("split", (primary, 10), (canary, 90))
    client = env.http()
    for _ in range(5):
        body = (await client.post("/tokenize", json={"model": "split", "prompt": "x"})).json()
        assert body["max_model_len"] == 100


async def test_tokenizer_endpoints_emit_no_inference_event(env: Env, words: str) -> None:
    await env.http().post("/tokenize", json={"model": words, "prompt": "x"})
    assert env.finished.events == []


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/tokenize", {"model": "nope", "prompt": "x"}, 404, "model"),
        ("/tokenize", {"model": "words"}, 400, "prompt"),
        ("/tokenize", {"model": "words", "prompt": "x", "messages": []}, 400, "messages"),
        (
            "/tokenize",
            {"model": "words", "prompt": "x", "messages": [{"role": "user", "content": "y"}]},
            400,
            "prompt",
        ),
        ("/tokenize", {"model": "words", "prompt": 5}, 400, "prompt"),
        ("/detokenize", {"model": "words", "tokens": [10_000]}, 400, "tokens"),
        ("/detokenize", {"model": "words", "tokens": [-1]}, 400, "tokens"),
        ("/detokenize", {"model": "words", "tokens": "abc"}, 400, "tokens"),
        ("/detokenize", {"model": "nope", "tokens": [0]}, 404, "model"),
    ],
)
async def test_bad_tokenizer_requests_are_openai_errors(
    env: Env, words: str, path: str, body: dict[str, Any], status: int, param: str
) -> None:
    response = await env.http().post(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


async def test_tokenizer_endpoints_need_a_key(env: Env, words: str) -> None:
    client = env.http()
    del client.headers["Authorization"]
    response = await client.post("/tokenize", json={"model": words, "prompt": "x"})
    assert response.status_code == 401
    assert (await client.get("/tokenizer_info", params={"model": words})).status_code == 401


async def test_a_remote_upstream_has_no_tokenizer_here(env: Env) -> None:
    register(
        env.services,
        env.admin.principal,
        "remote",
        source="http://127.0.0.1:9/v1",
        backend="openai",
        params={"model": "gpt-x"},
    )
    env.deploy("remote", ("remote@1", 100))
    response = await env.http().post("/tokenize", json={"model": "remote", "prompt": "x"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "kind 'openai'" in error["message"]
    assert error["param"] == "model"


async def test_lone_surrogates_are_a_400(env: Env, words: str) -> None:
    response = await env.http().post(
        "/tokenize",
        content=b'{"model": "words", "prompt": "\\ud800"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_tokenizer_endpoints_never_answer_5xx(tmp_path: Path, mode: str) -> None:
    services = make_services(make_settings(tmp_path / "home"))
    admin = admin_of(services)
    register(services, admin.principal, "bot")
    for name in ("default", "string"):  # names Hypothesis tends to try
        spec = DeploymentSpec(name=name, routes=[Route(target="bot@1", weight=100)])
        services.deployments.create(admin.principal, spec)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(services))
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    failures: list[str] = []
    checked = 0
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path not in ("/tokenize", "/detokenize", "/tokenizer_info"):
                continue
            checked += 1

            @given(case=operation.as_strategy(generation_mode=generation))
            @settings(
                max_examples=25,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                case.call_and_validate(
                    headers={"Authorization": f"Bearer {admin.key}"},
                    checks=[not_a_server_error],
                )

            try:
                check()
            except Exception as exc:
                failures.append(f"{operation.method.upper()} {operation.path}:\n{exc}")
    finally:
        services.close()
    assert checked == 3
    assert not failures, "\n\n".join(failures)
