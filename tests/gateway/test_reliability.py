"""Reliability under failure: a 30% failing primary with a fallback, timeouts, broken streams,
clients that go away.

The 2,000-request figure of issue 3 is ``benchmarks/reliability.py``; these are
the same properties, bounded and fast, on the mock backend's failure knobs and
on a real socket where a disconnect has to travel through uvicorn.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from e2e.live import LiveServer, serve
from gateway.harness import Env
from modelcycle.deploy import BreakerPolicy

CHAT = "/v1/chat/completions"


def body(text: str = "one two three", **extra: object) -> dict[str, object]:
    return {"model": "chat", "messages": [{"role": "user", "content": text}], **extra}


async def test_a_30_percent_failing_primary_with_a_fallback_loses_no_request(env: Env) -> None:
    # 30% of the traffic goes to a version that always fails (500-like), 20% to one
    # that hangs past the timeout, 10% to one whose streams break after a chunk:
    # the fallback takes every one of them.
    good = env.version("bot", "mock://echo")
    broken = env.version("bot", "mock://fail")
    hangs = env.version("bot", "mock://echo", latency_ms=5_000)
    cut = env.version("bot", "mock://echo", fail_mid_stream=0)
    spare = env.version("spare", "mock://echo")
    env.deploy(
        "chat",
        (good, 40),
        (broken, 30),
        (hangs, 20),
        (cut, 10),
        fallbacks=[spare],
        timeout_s=0.2,
    )
    http = env.http()

    slots = asyncio.Semaphore(20)  # 20 clients at a time

    async def call(n: int) -> httpx.Response:
        async with slots:
            return await http.post(CHAT, json=body(f"request {n}"))

    answers = await asyncio.gather(*(call(n) for n in range(200)))

    assert [a.status_code for a in answers] == [200] * 200
    assert [a.json()["choices"][0]["message"]["content"] for a in answers] == [
        f"request {n}" for n in range(200)
    ]
    routes = {e.route for e in env.finished.events if e.status == "ok"}
    assert routes >= {"primary", "fallback"}
    # A hung attempt costs its 0.2 s timeout, then the fallback answers: nobody
    # waits for the 5 s the hung version would take.
    assert any(e.attempts == 2 for e in env.finished.events)
    assert max(e.latency_ms for e in env.finished.events) < 2_500


async def test_no_request_outlives_its_timeout(env: Env) -> None:
    slow = env.version("bot", "mock://echo", latency_ms=10_000)
    also_slow = env.version("spare", "mock://echo", latency_ms=10_000)
    env.deploy(
        "chat",
        (slow, 100),
        fallbacks=[also_slow],
        timeout_s=0.1,
        retries=1,
        breaker=BreakerPolicy(failures=0),  # every attempt really waits for its timeout
    )
    http = env.http()

    started = time.monotonic()
    answers = await asyncio.gather(*(http.post(CHAT, json=body()) for _ in range(20)))
    elapsed = time.monotonic() - started

    assert {a.status_code for a in answers} == {504}
    # Four attempts (each target once plus one retry), each cut at 0.1 s. Had any
    # attempt waited for its backend it would take 10 s; the bounds stay far below
    # that while leaving room for a loaded 2-core machine's scheduling delays.
    assert {e.attempts for e in env.finished.events} == {4}
    assert max(e.latency_ms for e in env.finished.events) < 5_000
    assert elapsed < 8


async def test_streams_under_failures_finish_with_done_or_an_error_never_silently(
    env: Env,
) -> None:
    words = " ".join(f"w{n}" for n in range(8))
    whole = env.version("bot", "mock://echo")
    cut = env.version("bot", "mock://echo", fail_mid_stream=3)
    env.deploy("chat", (whole, 50), (cut, 50), fallbacks=[env.version("spare")])
    http = env.http()

    answers = await asyncio.gather(
        *(http.post(CHAT, json=body(words, stream=True)) for _ in range(60))
    )

    outcomes = set()
    for answer in answers:
        assert answer.status_code == 200  # every stream began
        events = [e for e in answer.text.split("\n\n") if e]
        if events[-1] == "data: [DONE]":
            text = "".join(
                json.loads(e[6:])["choices"][0]["delta"].get("content", "")
                for e in events[:-1]
                if e.startswith("data: {") and '"choices":[{' in e
            )
            assert text == words  # a stream that says it is done is whole
            outcomes.add("done")
        else:
            assert '"error"' in events[-1]  # a broken stream says so
            assert '"type":"upstream_error"' in events[-1]
            outcomes.add("error")
    assert outcomes == {"done", "error"}
    broken = [e for e in env.finished.events if e.status == "error"]
    assert broken
    assert all(e.status_code == 502 for e in broken)


@pytest.fixture
def live(env: Env) -> Iterator[LiveServer]:
    with serve(env.services, env.admin.key) as server:
        yield server


@pytest.mark.e2e
def test_a_client_that_disconnects_cancels_a_whole_answer(env: Env, live: LiveServer) -> None:
    env.deploy("chat", (env.version("bot", "mock://echo", latency_ms=3_000), 100))
    headers = {"Authorization": f"Bearer {env.app_key.key}"}

    with (
        httpx.Client(base_url=live.url, headers=headers, timeout=0.3) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.post(CHAT, json=body())  # gives up and closes the connection
    deadline = time.monotonic() + 5
    while not env.finished.events and time.monotonic() < deadline:
        time.sleep(0.02)

    [event] = env.finished.events
    assert (event.status, event.status_code) == ("cancelled", 499)
    assert event.latency_ms < 2_000  # the backend call was stopped, not waited for
