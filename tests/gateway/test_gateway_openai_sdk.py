"""The official ``openai`` SDK against ``/v1``: answers, streams, models, usage."""

from __future__ import annotations

import openai
import pytest

from gateway.harness import Env


@pytest.fixture
def chat(env: Env) -> str:
    target = env.version("bot", "mock://script?reply=Rome+is+the+capital.")
    env.deploy("chat", (target, 100))
    return "chat"


async def test_chat_completion_through_the_sdk(env: Env, chat: str) -> None:
    answer = await env.openai().chat.completions.create(
        model=chat,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of Italy?"},
        ],
        temperature=0.2,
        max_tokens=20,
        seed=1,
        user="ada",
    )
    assert answer.object == "chat.completion"
    assert answer.id.startswith("chatcmpl-")
    assert answer.model == "chat"
    assert answer.system_fingerprint == "bot@1"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == "Rome is the capital."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 4
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 4


async def test_max_tokens_gives_finish_reason_length(env: Env, chat: str) -> None:
    answer = await env.openai().chat.completions.create(
        model=chat, messages=[{"role": "user", "content": "x"}], max_completion_tokens=2
    )
    assert answer.choices[0].message.content == "Rome is"
    assert answer.choices[0].finish_reason == "length"


async def test_chat_stream_through_the_sdk_with_usage(env: Env, chat: str) -> None:
    stream = await env.openai().chat.completions.create(
        model=chat,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Rome is the capital."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert finishes[:-1] == [None] * (len(finishes) - 1)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_without_include_usage_has_no_usage_chunk(env: Env, chat: str) -> None:
    stream = await env.openai().chat.completions.create(
        model=chat, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_text_completion_with_echo_and_stream(env: Env, chat: str) -> None:
    client = env.openai()
    done = await client.completions.create(model=chat, prompt="Q: ", echo=True, max_tokens=1)
    assert done.object == "text_completion"
    assert done.choices[0].text == "Q: Rome"
    assert done.choices[0].finish_reason == "length"

    stream = await client.completions.create(
        model=chat, prompt="Q:", stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Rome is the capital."
    assert chunks[-1].usage is not None


async def test_models_lists_the_keys_deployments_only(env: Env, chat: str) -> None:
    env.deploy("other", ("bot@1", 100))
    models = await env.openai().models.list()
    assert [m.id for m in models.data] == ["chat", "other"]
    assert {m.owned_by for m in models.data} == {"modelcycle"}


async def test_raw_sse_is_exactly_what_openai_sends(env: Env, chat: str) -> None:
    response = await env.http().post(
        "/v1/chat/completions",
        json={
            "model": chat,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-modelcycle-version"] == "bot@1"
    events = response.text.split("\n\n")
    assert events[-1] == ""
    assert events[-2] == "data: [DONE]"
    assert all(event.startswith("data: ") for event in events[:-1])


async def test_a_wrong_key_is_an_authentication_error_in_the_sdk(env: Env, chat: str) -> None:
    with pytest.raises(openai.AuthenticationError):
        await env.openai("mc_abcdefgh_" + "x" * 32).chat.completions.create(
            model=chat, messages=[{"role": "user", "content": "hi"}]
        )


async def test_an_unknown_deployment_is_model_not_found(env: Env, chat: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await env.openai().chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
