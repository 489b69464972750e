"""Kind ``openai`` through the gateway: a real upstream on 127.0.0.1, the official SDK as client.

Answers, streams and tool calls come back in OpenAI's shape; an upstream's 4xx
reaches the client with its status and message; 5xx, dropped connections and
timeouts fall back or end within the deployment's timeout; a stream cut
mid-way ends with an error event, never ``[DONE]``; connections are reused.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from backends.openai_env import TOOLS, gateway_env, openai_version
from backends.openai_upstream import REPLY, MockUpstream
from gateway.harness import Env
from modelcycle.backends.base import GenerationParams, Message
from modelcycle.backends.openai_compat import OpenAICompatBackend
from modelcycle.backends.openai_http import environment_proxy
from modelcycle.errors import UpstreamError
from modelcycle.settings import Settings
from modelcycle.testing import register
from modelcycle.types import BackendKind

USER = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def modelcycle_database_url() -> str | None:
    """The request path does not depend on the database: SQLite only."""
    return None


@pytest.fixture
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as server:
        yield server


@pytest.fixture
def spare() -> Iterator[MockUpstream]:
    with MockUpstream(reply="Hello from the spare.") as server:
        yield server


@pytest.fixture
async def env(modelcycle_settings: Settings) -> AsyncIterator[Env]:
    async with gateway_env(modelcycle_settings) as built:
        yield built


@pytest.fixture
def chat(env: Env, upstream: MockUpstream) -> str:
    env.deploy("chat", (openai_version(env, "remote", upstream), 100))
    return "chat"


async def test_a_whole_answer_comes_from_the_upstream(
    env: Env, upstream: MockUpstream, chat: str
) -> None:
    answer = await env.openai().chat.completions.create(
        model=chat, messages=USER, max_tokens=20, temperature=0.3, seed=7, user="ada"
    )

    assert answer.choices[0].message.content == REPLY
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "chat"
    assert answer.system_fingerprint == "remote@1"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (5, 4)
    [sent] = upstream.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.body == {
        "model": "upstream-model",
        "messages": USER,
        "max_tokens": 20,
        "temperature": 0.3,
        "seed": 7,
        "user": "ada",
    }
    assert "authorization" not in sent.headers  # no credential configured, none sent


async def test_a_streamed_answer_arrives_piece_by_piece_with_usage(
    env: Env, upstream: MockUpstream, chat: str
) -> None:
    stream = await env.openai().chat.completions.create(
        model=chat, messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert pieces == ["Hello", " from", " the", " upstream."]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert upstream.requests[0].body["stream"] is True
    assert upstream.requests[0].body["stream_options"] == {"include_usage": True}


async def test_legacy_completions_whole_and_streamed(
    env: Env, upstream: MockUpstream, chat: str
) -> None:
    client = env.openai()
    whole = await client.completions.create(model=chat, prompt="Once upon", max_tokens=5)
    streamed = [
        c async for c in await client.completions.create(model=chat, prompt="x", stream=True)
    ]

    assert whole.choices[0].text == REPLY
    assert "".join(c.choices[0].text for c in streamed if c.choices) == REPLY
    assert upstream.requests[0].path == "/v1/completions"
    assert upstream.requests[0].body["prompt"] == "Once upon"


async def test_tool_calls_round_trip(env: Env, upstream: MockUpstream, chat: str) -> None:
    client = env.openai()
    first = await client.chat.completions.create(
        model=chat,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="auto",
        parallel_tool_calls=False,
    )
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert message.tool_calls is not None
    [call] = message.tool_calls
    assert call.id == "call_weather_1"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]

    second = await client.chat.completions.create(
        model=chat,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "18°C"},
        ],
        tools=TOOLS,  # type: ignore[arg-type]
    )

    assert second.choices[0].message.content == "It is 18°C in Paris."
    sent_first, sent_second = (request.body for request in upstream.requests)
    assert sent_first["tools"] == TOOLS
    assert (sent_first["tool_choice"], sent_first["parallel_tool_calls"]) == ("auto", False)
    assert sent_second["messages"][1]["tool_calls"][0]["id"] == "call_weather_1"
    assert sent_second["messages"][2] == {
        "role": "tool",
        "tool_call_id": "call_weather_1",
        "content": "18°C",
    }


async def test_streamed_tool_calls_assemble_in_the_sdk(
    env: Env, upstream: MockUpstream, chat: str
) -> None:
    stream = await env.openai().chat.completions.create(
        model=chat,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=TOOLS,  # type: ignore[arg-type]
        stream=True,
    )
    chunks = [chunk async for chunk in stream]

    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == "call_weather_1"
    assert deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    arguments = "".join((d.function.arguments or "") for d in deltas if d.function)
    assert json.loads(arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_openai_fields_pass_through_and_others_only_when_allowed(
    env: Env, upstream: MockUpstream
) -> None:
    env.deploy("strict", (openai_version(env, "strict", upstream), 100))
    env.deploy("vllm", (openai_version(env, "vllm", upstream, extra_fields=["top_k"]), 100))
    client = env.openai()
    for deployment in ("strict", "vllm"):
        await client.chat.completions.create(
            model=deployment,
            messages=USER,
            response_format={"type": "json_object"},
            presence_penalty=0.5,
            extra_body={"top_k": 5, "chat_template": "{{ evil }}"},
        )

    strict, vllm = (request.body for request in upstream.requests)
    assert strict["response_format"] == {"type": "json_object"}
    assert strict["presence_penalty"] == 0.5
    assert "top_k" not in strict
    assert vllm["top_k"] == 5
    assert "chat_template" not in strict
    assert "chat_template" not in vllm


async def test_an_upstream_400_reaches_the_client_with_its_message_and_no_fallback(
    env: Env, upstream: MockUpstream, spare: MockUpstream
) -> None:
    env.deploy(
        "chat",
        (openai_version(env, "remote", upstream), 100),
        fallbacks=[openai_version(env, "spare", spare)],
        retries=2,
    )
    upstream.then(("status", 400), ("status", 422), ("status", 400))
    client = env.openai()

    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(model="chat", messages=USER)
    with pytest.raises(openai.UnprocessableEntityError) as unprocessable:
        await client.chat.completions.create(model="chat", messages=USER)
    with pytest.raises(openai.BadRequestError) as streamed:
        await client.chat.completions.create(model="chat", messages=USER, stream=True)

    assert bad.value.status_code == 400
    assert "upstream says 400" in bad.value.message
    assert bad.value.body["param"] == "tools"  # type: ignore[index]
    assert "upstream says 422" in unprocessable.value.message
    assert "upstream says 400" in streamed.value.message  # refused before the stream began
    assert len(upstream.requests) == 3  # not retried
    assert spare.requests == []  # not sent to the fallback: it would refuse it too
    assert [e.status_code for e in env.finished.events] == [400, 422, 400]


async def test_an_upstream_500_falls_back_to_another_version(
    env: Env, upstream: MockUpstream, spare: MockUpstream
) -> None:
    env.deploy(
        "chat",
        (openai_version(env, "remote", upstream), 100),
        fallbacks=[openai_version(env, "spare", spare)],
    )
    upstream.then(("status", 500), ("status", 503), "drop", ("status", 502))
    client = env.openai()

    answers = [
        await client.chat.completions.with_raw_response.create(model="chat", messages=USER)
        for _ in range(3)
    ]
    stream = await client.chat.completions.create(model="chat", messages=USER, stream=True)
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    for raw in answers:
        assert raw.headers["x-modelcycle-route"] == "fallback"
        assert raw.parse().choices[0].message.content == "Hello from the spare."
    assert streamed == "Hello from the spare."  # a stream that failed before it began
    assert [e.route for e in env.finished.events] == ["fallback"] * 4
    assert len(spare.requests) == 4


async def test_an_upstream_that_hangs_ends_in_504_within_the_deployment_timeout(
    env: Env, upstream: MockUpstream
) -> None:
    env.deploy("chat", (openai_version(env, "remote", upstream), 100), timeout_s=0.5)
    upstream.then("hang", "hang")
    client = env.openai()

    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as whole:
        await client.chat.completions.create(model="chat", messages=USER)
    with pytest.raises(openai.APIStatusError) as streamed:
        await client.chat.completions.create(model="chat", messages=USER, stream=True)
    elapsed = time.monotonic() - started

    assert whole.value.status_code == streamed.value.status_code == 504
    assert "did not answer within 0.5 s" in whole.value.message
    assert elapsed < 3  # two calls of 0.5 s each, with room for a slow machine


async def test_the_versions_own_timeout_gives_504_too(env: Env, upstream: MockUpstream) -> None:
    env.deploy("chat", (openai_version(env, "remote", upstream, timeout_s=0.3), 100))
    upstream.then("hang")

    with pytest.raises(openai.APIStatusError) as failed:
        await env.openai().chat.completions.create(model="chat", messages=USER)

    assert failed.value.status_code == 504
    assert "did not answer within 0.3 s" in failed.value.message


@pytest.mark.parametrize("how", ["cut", "cut_clean"])
async def test_a_stream_cut_mid_way_ends_with_an_error_event_and_no_done(
    env: Env, upstream: MockUpstream, chat: str, how: str
) -> None:
    upstream.then(how)
    body = {"model": chat, "messages": USER, "stream": True}

    async with env.http().stream("POST", "/v1/chat/completions", json=body) as response:
        lines = [line async for line in response.aiter_lines() if line]

    assert response.status_code == 200  # the stream had begun: the error comes in-band
    assert json.loads(lines[1].removeprefix("data: "))["choices"][0]["delta"]["content"] == "Hello"
    error = json.loads(lines[-1].removeprefix("data: "))["error"]
    assert "upstream" in error["message"]
    assert "data: [DONE]" not in lines
    [event] = env.finished.events
    assert (event.status, event.status_code) == ("error", 502)


async def test_a_misconfigured_credential_is_a_502_not_the_clients_401(
    env: Env, upstream: MockUpstream, spare: MockUpstream
) -> None:
    env.deploy(
        "chat",
        (openai_version(env, "remote", upstream), 100),
        fallbacks=[openai_version(env, "spare", spare)],
        retries=3,
    )
    upstream.then(("status", 401))

    answer = await env.openai().chat.completions.create(model="chat", messages=USER)
    spare.then(("status", 401))
    upstream.then(("status", 401))
    with pytest.raises(openai.APIStatusError) as failed:
        await env.openai().chat.completions.create(model="chat", messages=USER)

    assert answer.choices[0].message.content == "Hello from the spare."
    assert failed.value.status_code == 502
    assert "refused the version's credential (401)" in failed.value.message
    assert len(upstream.requests) == 2  # a 401 is not retried: the credential will not change


async def test_connections_are_pooled_and_reused(
    env: Env, upstream: MockUpstream, chat: str
) -> None:
    client = env.openai()
    for _ in range(20):
        await client.chat.completions.create(model=chat, messages=USER)
    for _ in range(5):  # waves of 16 at once
        await asyncio.gather(
            *(client.chat.completions.create(model=chat, messages=USER) for _ in range(16))
        )

    assert len(upstream.requests) == 100
    # One connection for the sequential requests, then at most one per concurrent request.
    assert upstream.connections <= 17


async def test_sequential_requests_share_one_connection_per_kind_of_answer(
    env: Env, upstream: MockUpstream, chat: str
) -> None:
    client = env.openai()
    for _ in range(10):
        stream = await client.chat.completions.create(model=chat, messages=USER, stream=True)
        assert [c async for c in stream]
        await client.chat.completions.create(model=chat, messages=USER)

    assert len(upstream.requests) == 20
    # Streams (aiohttp) and whole answers (plain_http) each keep one connection alive.
    assert upstream.connections == 2


async def test_an_unreachable_upstream_falls_back(
    env: Env, upstream: MockUpstream, spare: MockUpstream
) -> None:
    gone = MockUpstream()
    with gone:
        dead = openai_version(env, "gone", gone)
    env.deploy("chat", (dead, 100), fallbacks=[openai_version(env, "spare", spare)])

    answer = await env.openai().chat.completions.create(model="chat", messages=USER)
    spare.then("drop")
    with pytest.raises(openai.APIStatusError) as failed:
        await env.openai().chat.completions.create(model="chat", messages=USER)

    assert answer.choices[0].message.content == "Hello from the spare."
    assert failed.value.status_code == 502
    assert "dropped the connection" in failed.value.message


async def test_whole_answers_and_streams_both_go_through_the_environments_proxy(
    env: Env, upstream: MockUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, upstream.url.split("/v1")[0])  # it answers as a proxy too
    nowhere = register(
        env.services,
        env.admin.principal,
        "behind-proxy",
        source="http://10.255.255.1:9/v1",  # unroutable: only the proxy can reach "it"
        backend=BackendKind.OPENAI,
        params={"model": "upstream-model"},
    )
    env.deploy("proxied", (f"behind-proxy@{nowhere.version}", 100))
    client = env.openai()

    whole = await client.chat.completions.create(model="proxied", messages=USER)
    stream = await client.chat.completions.create(model="proxied", messages=USER, stream=True)
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert whole.choices[0].message.content == REPLY
    assert streamed == REPLY
    # Both asked the proxy for the absolute URL, as HTTP proxies are asked.
    assert [r.path for r in upstream.requests] == ["http://10.255.255.1:9/v1/chat/completions"] * 2


def test_no_proxy_exempts_its_hosts_from_the_environments_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "vllm.internal,10.0.0.5")

    assert environment_proxy("http://api.example/v1") == "http://proxy.example:3128"
    assert environment_proxy("http://vllm.internal:8000/v1") is None
    assert environment_proxy("http://gpu.vllm.internal/v1") is None  # subdomains too
    assert environment_proxy("http://10.0.0.5:8000/v1") is None
    assert environment_proxy("https://api.example/v1") is None  # no HTTPS_PROXY set


async def test_whole_answers_in_flight_are_bounded_by_max_connections(
    env: Env, upstream: MockUpstream
) -> None:
    env.deploy("narrow", (openai_version(env, "narrow", upstream, max_connections=2), 100))
    upstream.then(*[("think", 4)] * 6)  # each answer takes 200 ms
    client = env.openai()

    answers = await asyncio.gather(
        *(client.chat.completions.create(model="narrow", messages=USER) for _ in range(6))
    )

    assert [a.choices[0].message.content for a in answers] == [REPLY] * 6
    assert upstream.connections == 2  # the others waited for a slot, then reused a connection


async def test_an_upstream_that_refuses_connections_is_named_by_the_reason_not_the_url() -> None:
    with socket.socket() as sock:  # a port nobody listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAICompatBackend(f"http://127.0.0.1:{port}/v1", {"model": "m"})
    try:
        with pytest.raises(UpstreamError) as failed:
            await backend.chat([Message(role="user", content="hi")], GenerationParams())
    finally:
        await backend.close()

    assert failed.value.message.startswith("cannot connect to the upstream: Connection refused")
    assert str(port) not in failed.value.message  # the URL stays in the log, not the answer
