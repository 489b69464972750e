"""``RequestFinished`` reaches plugins with what the monitoring stage needs."""

from __future__ import annotations

import pytest

from gateway.harness import Env


async def test_a_served_request_reports_who_served_it_and_how_fast(env: Env) -> None:
    target = env.version("bot", "mock://script?reply=a+b+c")
    env.deploy("chat", (target, 100))

    await env.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "one two"}]
    )

    [event] = env.finished.events
    assert event.project == "default"
    assert event.deployment == "chat"
    assert event.key_id == env.app_key.principal.key_id
    assert event.endpoint == "chat.completions"
    assert (event.model, event.version, event.route) == ("bot", 1, "primary")
    assert (event.status, event.status_code, event.error_type) == ("ok", 200, None)
    assert (event.prompt_tokens, event.completion_tokens) == (2, 3)
    assert event.stream is False
    assert event.ttft_ms is None
    assert 0 < event.latency_ms < 1000
    assert event.attempts == 1
    assert event.finish_reason == "stop"
    assert len(event.request_id) == 32


async def test_a_stream_reports_time_to_first_token_and_usage(env: Env) -> None:
    env.deploy("chat", (env.version("bot", "mock://echo", chunk_delay_ms=20), 100))
    stream = await env.openai().completions.create(model="chat", prompt="a b c d", stream=True)
    async for _ in stream:
        pass

    [event] = env.finished.events
    assert event.stream is True
    assert event.endpoint == "completions"
    assert event.ttft_ms is not None
    assert event.ttft_ms < event.latency_ms
    assert event.latency_ms >= 60  # three gaps of 20 ms between four chunks
    assert event.completion_tokens == 4


async def test_an_unknown_deployment_is_reported_as_an_error(env: Env) -> None:
    response = await env.http().post(
        "/v1/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 404
    [event] = env.finished.events
    assert (event.status, event.status_code, event.error_type) == (
        "error",
        404,
        "model_not_found",
    )
    assert event.attempts == 0


async def test_a_bad_request_never_reaches_the_gateway_or_emits(env: Env) -> None:
    response = await env.http().post("/v1/chat/completions", json={"model": "x", "messages": []})
    assert response.status_code == 400
    assert env.finished.events == []


@pytest.mark.parametrize("stream", [False, True])
async def test_exactly_one_event_per_request(env: Env, stream: bool) -> None:
    env.deploy("chat", (env.version("bot"), 100))
    client = env.openai()
    for _ in range(5):
        result = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=stream
        )
        if stream:
            async for _ in result:  # type: ignore[union-attr]
                pass
    assert len(env.finished.events) == 5
    assert len({e.request_id for e in env.finished.events}) == 5
