"""Through a real socket: the synchronous ``openai`` SDK, streams, and disconnects."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import httpx2
import openai
import pytest

from e2e.live import LiveServer, serve
from gateway.harness import Env

pytestmark = pytest.mark.e2e


@pytest.fixture
def live(env: Env) -> Iterator[LiveServer]:
    with serve(env.services, env.admin.key) as server:
        yield server


def sdk(live: LiveServer, env: Env) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{live.url}/v1",
        api_key=env.app_key.key,
        http_client=httpx2.Client(timeout=10),
        max_retries=0,
    )


def test_the_sync_sdk_chats_and_streams_over_a_socket(env: Env, live: LiveServer) -> None:
    env.deploy("chat", (env.version("bot", "mock://script?reply=Rome+it+is."), 100))
    with sdk(live, env) as client:
        answer = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "capital of Italy?"}]
        )
        chunks = list(
            client.chat.completions.create(
                model="chat",
                messages=[{"role": "user", "content": "capital of Italy?"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    assert answer.choices[0].message.content == "Rome it is."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Rome it is."
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


def test_a_client_that_disconnects_cancels_the_stream(env: Env, live: LiveServer) -> None:
    words = "+".join(f"w{n}" for n in range(100))
    env.deploy("chat", (env.version("bot", f"mock://script?reply={words}", chunk_delay_ms=50), 100))
    body = {"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream": True}
    headers = {"Authorization": f"Bearer {env.app_key.key}"}
    started = time.monotonic()
    with (
        httpx.Client(base_url=live.url, headers=headers) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    deadline = time.monotonic() + 5
    while not env.finished.events and time.monotonic() < deadline:
        time.sleep(0.02)

    [event] = env.finished.events
    assert (event.status, event.status_code) == ("cancelled", 499)
    assert event.latency_ms < 2000  # a full answer would take 100 x 50 ms
    assert time.monotonic() - started < 4
