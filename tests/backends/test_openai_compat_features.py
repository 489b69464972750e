"""Other gateway features over an ``openai`` version: ``n``, logprobs, embeddings, JSON mode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from backends.openai_env import gateway_env, openai_version
from backends.openai_upstream import REPLY, MockUpstream
from gateway.harness import Env
from modelcycle.settings import Settings

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def modelcycle_database_url() -> str | None:
    return None


@pytest.fixture
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as server:
        yield server


@pytest.fixture
async def env(modelcycle_settings: Settings, upstream: MockUpstream) -> AsyncIterator[Env]:
    async with gateway_env(modelcycle_settings) as built:
        built.deploy("chat", (openai_version(built, "remote", upstream), 100))
        yield built


async def test_n_choices_are_one_upstream_call_each(env: Env, upstream: MockUpstream) -> None:
    answer = await env.openai().chat.completions.create(model="chat", messages=USER, n=2, seed=1)

    assert [c.message.content for c in answer.choices] == [REPLY, REPLY]
    assert [c.index for c in answer.choices] == [0, 1]
    assert len(upstream.requests) == 2
    assert all("n" not in request.body for request in upstream.requests)
    assert [request.body["seed"] for request in upstream.requests] == [1, 2]


async def test_chat_logprobs_come_back_in_openai_shape(env: Env, upstream: MockUpstream) -> None:
    answer = await env.openai().chat.completions.create(
        model="chat", messages=USER, logprobs=True, top_logprobs=0
    )

    assert answer.choices[0].logprobs is not None
    content = answer.choices[0].logprobs.content
    assert content is not None
    assert [t.token for t in content] == ["Hello", " from", " the", " upstream."]
    assert content[0].logprob == -0.25
    assert (upstream.requests[0].body["logprobs"], upstream.requests[0].body["top_logprobs"]) == (
        True,
        0,
    )


async def test_embeddings_through_the_gateway(env: Env, upstream: MockUpstream) -> None:
    result = await env.openai().embeddings.create(model="chat", input=["a", "abcd"])

    assert [item.embedding for item in result.data] == [[1.0, 0.5], [4.0, 0.5]]
    assert result.usage.prompt_tokens == 3
    assert upstream.requests[0].path == "/v1/embeddings"
    assert upstream.requests[0].body["model"] == "upstream-model"


async def test_json_schema_reaches_the_upstream_as_sent(env: Env, upstream: MockUpstream) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "city", "strict": True, "schema": {"type": "object"}},
    }
    await env.openai().chat.completions.create(
        model="chat",
        messages=USER,
        response_format=response_format,  # type: ignore[arg-type]
    )

    assert upstream.requests[0].body["response_format"] == response_format
