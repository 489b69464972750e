"""Failures: retries, fallbacks in order, timeouts, streams that break, and the events."""

from __future__ import annotations

import asyncio

import openai
import pytest

from gateway.harness import Env


async def test_the_fallback_answers_when_the_primary_fails(env: Env) -> None:
    broken = env.version("bot", "mock://fail")
    spare = env.version("spare", "mock://script?reply=from+the+fallback")
    env.deploy("chat", (broken, 100), fallbacks=[spare])

    answer = await env.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )

    assert answer.choices[0].message.content == "from the fallback"
    assert answer.system_fingerprint == "spare@1"
    [event] = env.finished.events
    assert (event.status, event.route, event.model, event.attempts) == (
        "ok",
        "fallback",
        "spare",
        2,
    )


async def test_retries_on_the_same_target_come_before_the_fallbacks(env: Env) -> None:
    flaky = env.version("bot", "mock://echo", fail_first=2)
    spare = env.version("spare", "mock://script?reply=spare")
    env.deploy("chat", (flaky, 100), fallbacks=[spare], retries=2)

    answer = await env.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )

    assert answer.choices[0].message.content == "hi"
    assert env.finished.events[-1].attempts == 3
    assert env.finished.events[-1].route == "primary"


async def test_when_everything_fails_the_client_gets_502_upstream_error(env: Env) -> None:
    env.deploy(
        "chat",
        (env.version("bot", "mock://fail"), 100),
        fallbacks=[env.version("b2", "mock://fail")],
    )

    with pytest.raises(openai.APIStatusError) as caught:
        await env.openai().chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}]
        )

    assert caught.value.status_code == 502
    assert caught.value.type == "upstream_error"
    assert "failed after 2 attempt(s)" in caught.value.message
    [event] = env.finished.events
    # The failure counts against the last version tried (error rates per version).
    assert (event.status, event.status_code, event.model, event.route) == (
        "error",
        502,
        "b2",
        "fallback",
    )


async def test_a_slow_backend_times_out_with_504(env: Env) -> None:
    env.deploy("chat", (env.version("bot", "mock://echo", latency_ms=2000), 100), timeout_s=0.05)
    response = await env.http().post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "upstream_error"
    assert response.json()["error"]["code"] == "timeout"
    assert env.finished.events[-1].latency_ms < 1000


async def test_a_timeout_falls_back_too(env: Env) -> None:
    slow = env.version("bot", "mock://echo", latency_ms=2000)
    env.deploy("chat", (slow, 100), fallbacks=[env.version("fast", "mock://echo")], timeout_s=0.05)
    answer = await env.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "quick"}]
    )
    assert answer.choices[0].message.content == "quick"


async def test_a_target_that_can_no_longer_serve_is_skipped(env: Env) -> None:
    first = env.version("bot")
    env.services.aliases.set(env.admin.principal, "bot", "production", 1)
    env.deploy(
        "chat", ("bot@production", 100), fallbacks=[env.version("spare", "mock://script?reply=ok")]
    )
    env.services.aliases.delete(env.admin.principal, "bot", "production")
    assert first == "bot@1"

    answer = await env.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )

    assert answer.choices[0].message.content == "ok"
    assert env.finished.events[-1].attempts == 2


async def test_a_stream_that_fails_before_its_first_chunk_falls_back(env: Env) -> None:
    env.deploy("chat", (env.version("bot", "mock://fail"), 100), fallbacks=[env.version("spare")])
    stream = await env.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "a b"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "a b"
    assert env.finished.events[-1].route == "fallback"
    assert env.finished.events[-1].stream is True


async def test_a_stream_broken_mid_way_ends_with_an_error_not_a_silent_success(env: Env) -> None:
    env.deploy("chat", (env.version("bot", "mock://echo", fail_mid_stream=2), 100))
    response = await env.http().post(
        "/v1/chat/completions",
        json={
            "model": "chat",
            "messages": [{"role": "user", "content": "one two three four"}],
            "stream": True,
        },
    )
    assert response.status_code == 200  # the stream had begun
    assert "data: [DONE]" not in response.text
    assert '"type":"upstream_error"' in response.text.split("\n\n")[-2]

    stream = await env.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    with pytest.raises(openai.APIError, match="stream cut"):
        async for _ in stream:
            pass
    event = env.finished.events[-1]
    assert (event.status, event.status_code, event.error_type) == ("error", 502, "upstream_error")
    assert event.ttft_ms is not None


async def test_shadow_traffic_is_served_and_recorded_but_never_returned(env: Env) -> None:
    live = env.version("bot", "mock://script?reply=live")
    shadow = env.version("bot", "mock://script?reply=shadow")
    env.deploy("chat", (live, 100), shadow=shadow)

    answer = await env.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    for _ in range(200):  # the shadow call runs in the background
        if len(env.finished.events) == 2:
            break
        await asyncio.sleep(0.01)

    assert answer.choices[0].message.content == "live"
    routes = sorted((e.route, e.version, e.status) for e in env.finished.events)
    assert routes == [("primary", 1, "ok"), ("shadow", 2, "ok")]
