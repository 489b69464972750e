"""Kind ``openai`` over real sockets end to end: SDK -> uvicorn gateway -> upstream.

The gateway runs with its lifespan on, so its pooled upstream connections are
closed on the server's own event loop when it stops.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import httpx2
import openai
import pytest
import uvicorn

from backends.openai_env import TOOLS, gateway_env, openai_version
from backends.openai_upstream import REPLY, MockUpstream
from e2e.live import wait_until_answers
from gateway.harness import Env
from modelcycle.api.http_protocol import CoalescingHttpToolsProtocol
from modelcycle.settings import Settings

pytestmark = pytest.mark.e2e

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def modelcycle_database_url() -> str | None:
    return None


@pytest.fixture
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as server:
        yield server


@pytest.fixture
async def env(modelcycle_settings: Settings) -> AsyncIterator[Env]:
    async with gateway_env(modelcycle_settings) as built:
        yield built


@contextmanager
def serve(env: Env) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        env.app,
        log_config=None,
        log_level="warning",
        ws="none",
        lifespan="on",
        http=CoalescingHttpToolsProtocol,  # as ``modelcycle up`` serves
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        wait_until_answers(f"{url}/healthz")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def gateway_url(env: Env, upstream: MockUpstream) -> Iterator[str]:
    env.deploy("chat", (openai_version(env, "remote", upstream), 100))
    with serve(env) as url:
        yield url


def sdk(url: str, env: Env) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{url}/v1",
        api_key=env.app_key.key,
        http_client=httpx2.Client(timeout=10),
        max_retries=0,
    )


def test_the_sync_sdk_chats_streams_and_calls_tools_over_sockets(
    env: Env, upstream: MockUpstream, gateway_url: str
) -> None:
    with sdk(gateway_url, env) as client:
        answer = client.chat.completions.create(model="chat", messages=USER)  # type: ignore[arg-type]
        chunks = list(
            client.chat.completions.create(
                model="chat",
                messages=USER,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        tools = client.chat.completions.create(
            model="chat",
            messages=USER,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
        )

    assert answer.choices[0].message.content == REPLY
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert chunks[-1].usage is not None
    assert tools.choices[0].message.tool_calls is not None
    assert tools.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    # Reused: one connection for the stream (aiohttp), one for both whole answers (plain_http).
    assert upstream.connections == 2


def test_a_client_that_disconnects_stops_the_upstream_whole_answer(
    env: Env, upstream: MockUpstream, gateway_url: str
) -> None:
    upstream.then(("think", 200))  # answers after 10 s if nobody stopped it
    body = {"model": "chat", "messages": USER}
    headers = {"Authorization": f"Bearer {env.app_key.key}"}

    with (
        httpx.Client(base_url=gateway_url, headers=headers, timeout=0.5) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.post("/v1/chat/completions", json=body)  # gives up and closes the connection
    deadline = time.monotonic() + 5
    while not upstream.aborted and time.monotonic() < deadline:
        time.sleep(0.02)

    assert upstream.aborted == 1  # the gateway closed its upstream connection too
    [event] = env.finished.events
    assert (event.status, event.status_code) == ("cancelled", 499)


def test_a_client_that_disconnects_stops_the_upstream_stream(
    env: Env, upstream: MockUpstream, gateway_url: str
) -> None:
    upstream.then(("slow", 200))  # 10 s of words if nobody stopped it
    body = {"model": "chat", "messages": USER, "stream": True}
    headers = {"Authorization": f"Bearer {env.app_key.key}"}

    with (
        httpx.Client(base_url=gateway_url, headers=headers) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")  # the role chunk
        assert "w0" in next(line for line in lines if line)
    deadline = time.monotonic() + 5
    while not upstream.aborted and time.monotonic() < deadline:
        time.sleep(0.02)

    assert upstream.aborted == 1
    [event] = env.finished.events
    assert (event.status, event.status_code) == ("cancelled", 499)
