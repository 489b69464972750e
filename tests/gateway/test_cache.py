"""The exact-match response cache: hits, misses, TTL, project isolation, streamed replay."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.harness import Env
from modelcycle.backends import Completion, MockBackend, Usage
from modelcycle.deploy import CachePolicy, DeploymentSpec, Route
from modelcycle.gateway.limits import Limits
from modelcycle.gateway.response_cache import MemoryCache
from modelcycle.testing import make_key, make_project, register
from modelcycle.types import Role


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(env: Env) -> Clock:
    clock = Clock()
    env.services.gateway.limits = Limits(clock=clock)
    return clock


def body(content: str = "tell me", **extra: Any) -> dict[str, Any]:
    return {
        "model": "chat",
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        **extra,
    }


async def post(client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
    response = await client.post("/v1/chat/completions", json=payload)
    assert response.status_code == 200, response.text
    return response


def backend_of(env: Env, source: str = "mock://echo") -> MockBackend:
    backend = env.services.gateway.backends.get("mock", source, {})
    assert isinstance(backend, MockBackend)
    return backend


async def test_the_second_identical_request_is_a_hit_and_calls_no_backend(
    env: Env, clock: Clock
) -> None:
    env.deploy("chat", (env.version("bot"), 100), cache=CachePolicy(ttl_s=60))
    client = env.http()

    first = await post(client, body())
    second = await post(client, body(user="someone-else"))  # `user` is not in the key

    assert first.headers["x-modelcycle-cache"] == "miss"
    assert second.headers["x-modelcycle-cache"] == "hit"
    assert second.json()["choices"][0]["message"]["content"] == "tell me"
    assert second.json()["usage"] == first.json()["usage"]
    assert len(backend_of(env).calls) == 1
    assert [e.cache_hit for e in env.finished.events] == [False, True]
    hit = env.finished.events[1]
    assert (hit.status, hit.model, hit.version, hit.route) == ("ok", "bot", 1, "primary")


async def test_only_deterministic_requests_are_cached(env: Env, clock: Clock) -> None:
    env.deploy("chat", (env.version("bot"), 100), cache=CachePolicy(ttl_s=60))
    client = env.http()
    sampled = body(temperature=0.8)
    await post(client, sampled)
    assert (await post(client, sampled)).headers["x-modelcycle-cache"] == "miss"
    seeded = body(temperature=0.8, seed=7)
    await post(client, seeded)
    assert (await post(client, seeded)).headers["x-modelcycle-cache"] == "hit"
    assert len(backend_of(env).calls) == 3


async def test_the_versions_default_temperature_counts(env: Env, clock: Clock) -> None:
    env.deploy("chat", (env.version("bot", temperature=0), 100), cache=CachePolicy(ttl_s=60))
    client = env.http()
    no_temperature = {"model": "chat", "messages": [{"role": "user", "content": "x"}]}
    await post(client, no_temperature)
    assert (await post(client, no_temperature)).headers["x-modelcycle-cache"] == "hit"


async def test_any_change_to_the_request_is_a_miss(env: Env, clock: Clock) -> None:
    env.deploy("chat", (env.version("bot"), 100), cache=CachePolicy(ttl_s=60))
    client = env.http()
    await post(client, body())
    for changed in (
        body("tell me more"),
        body(max_tokens=1),
        body(stop=["x"]),
        body(response_format={"type": "json_object"}),
    ):
        assert (await post(client, changed)).headers["x-modelcycle-cache"] == "miss"
    completion = await client.post(
        "/v1/completions", json={"model": "chat", "prompt": "tell me", "temperature": 0}
    )
    assert completion.headers["x-modelcycle-cache"] == "miss"
    assert completion.json()["choices"][0]["text"] == "tell me"


async def test_an_entry_expires_after_its_ttl(env: Env, clock: Clock) -> None:
    env.deploy("chat", (env.version("bot"), 100), cache=CachePolicy(ttl_s=30))
    client = env.http()
    await post(client, body())
    clock.now += 29.9
    assert (await post(client, body())).headers["x-modelcycle-cache"] == "hit"
    clock.now += 0.2
    assert (await post(client, body())).headers["x-modelcycle-cache"] == "miss"
    assert len(backend_of(env).calls) == 2


async def test_a_key_of_another_project_never_reads_an_entry(env: Env, clock: Clock) -> None:
    env.deploy("chat", (env.version("bot"), 100), cache=CachePolicy(ttl_s=60))
    team = make_project(env.services)
    team_admin = make_key(env.services, Role.ADMIN, team)
    register(env.services, team_admin.principal, "bot", params={})
    env.services.deployments.create(
        team_admin.principal,
        DeploymentSpec(
            name="chat", routes=[Route(target="bot@1", weight=100)], cache={"ttl_s": 60}
        ),
    )
    await post(env.http(), body())

    # Same deployment name, same model name, same version, same request: still a miss.
    other = await post(env.http(team_admin.key), body())

    assert other.headers["x-modelcycle-cache"] == "miss"
    assert len(backend_of(env).calls) == 2
    assert env.finished.events[-1].project == team


async def test_a_cached_answer_replays_as_a_stream_the_official_sdk_parses(
    env: Env, clock: Clock
) -> None:
    env.deploy(
        "chat",
        (env.version("bot", "mock://script?reply=Rome+is+the+capital."), 100),
        cache=CachePolicy(ttl_s=60),
    )
    client = env.openai()
    messages: Any = [{"role": "user", "content": "capital of Italy?"}]
    whole = await client.chat.completions.create(model="chat", messages=messages, temperature=0)

    raw = await client.chat.completions.with_raw_response.create(
        model="chat",
        messages=messages,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in raw.parse()]

    assert raw.headers["x-modelcycle-cache"] == "hit"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content == "Rome is the capital."
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    assert env.finished.events[-1].cache_hit is True
    assert env.finished.events[-1].stream is True


async def test_a_finished_stream_fills_the_cache_and_a_broken_one_does_not(
    env: Env, clock: Clock
) -> None:
    env.deploy("chat", (env.version("bot"), 100), cache=CachePolicy(ttl_s=60))
    env.deploy(
        "cut", (env.version("cut", "mock://echo", fail_mid_stream=1), 100), cache={"ttl_s": 60}
    )
    client = env.http()
    async with client.stream("POST", "/v1/chat/completions", json=body(stream=True)) as response:
        assert response.headers["x-modelcycle-cache"] == "miss"
        assert [line async for line in response.aiter_lines() if line][-1] == "data: [DONE]"
    hit = await post(client, body())
    assert hit.headers["x-modelcycle-cache"] == "hit"
    assert hit.json()["choices"][0]["message"]["content"] == "tell me"

    cut = body("a b c", stream=True, model="cut")
    for _ in range(2):
        async with client.stream("POST", "/v1/chat/completions", json=cut) as response:
            assert response.headers["x-modelcycle-cache"] == "miss"
            lines = [line async for line in response.aiter_lines() if line]
            assert '"error"' in lines[-1]


async def test_the_cache_is_off_unless_a_ttl_is_set(env: Env, clock: Clock) -> None:
    env.deploy("chat", (env.version("bot"), 100))
    client = env.http()
    first, second = await post(client, body()), await post(client, body())
    assert "x-modelcycle-cache" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert len(backend_of(env).calls) == 2


async def test_the_in_process_cache_is_bounded_by_entries_and_bytes() -> None:
    answer = Completion("x" * 100, "stop", Usage(1, 1))
    by_count = MemoryCache(max_entries=2, max_bytes=10_000)
    for key in ("a", "b"):
        await by_count.put(key, answer, 60, 0.0)
    assert await by_count.get("a", 1.0) is not None  # "a" is now the most recently used
    await by_count.put("c", answer, 60, 0.0)
    assert await by_count.get("b", 1.0) is None
    assert await by_count.get("a", 1.0) is not None
    assert len(by_count) == 2

    by_size = MemoryCache(max_entries=100, max_bytes=300)
    for key in ("a", "b", "c"):
        await by_size.put(key, answer, 60, 0.0)
    assert by_size.bytes <= 300
    assert len(by_size) == 2
    await by_size.put("huge", Completion("x" * 1000, "stop", Usage(1, 1)), 60, 0.0)
    assert await by_size.get("huge", 1.0) is None
