"""The concurrency limit: at most N requests in flight; the rest wait, then get 429."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from gateway.harness import Env
from modelcycle.deploy import CachePolicy, DeploymentLimits
from modelcycle.gateway.concurrency import Gate


async def chat(client: httpx.AsyncClient, content: str = "hi") -> httpx.Response:
    return await client.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": content}]},
    )


async def until(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


async def test_a_request_over_the_limit_waits_then_gets_429_with_retry_after(env: Env) -> None:
    env.deploy(
        "chat",
        (env.version("bot", "mock://echo", latency_ms=400), 100),
        limits=DeploymentLimits(max_concurrency=1, queue_timeout_s=0.05),
    )
    client = env.http()
    gates = env.services.gateway.limits.gates
    project_id = env.app_key.principal.project_id

    slow = asyncio.create_task(chat(client, "first"))
    await until(lambda: gates.in_flight(project_id, "chat") == 1)
    refused = await chat(client, "second")

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "concurrency_limit_exceeded")
    assert "1 in flight" in error["message"]
    assert refused.headers["retry-after"] == "1"
    assert (await slow).status_code == 200
    assert gates.in_flight(project_id, "chat") == 0
    assert [e.status_code for e in env.finished.events] == [429, 200]


async def test_waiting_requests_are_served_in_turn_when_a_slot_frees(env: Env) -> None:
    env.deploy(
        "chat",
        (env.version("bot", "mock://echo", latency_ms=50), 100),
        limits=DeploymentLimits(max_concurrency=2, queue_timeout_s=5),
    )
    client = env.http()
    gates = env.services.gateway.limits.gates
    project_id = env.app_key.principal.project_id
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, gates.in_flight(project_id, "chat"))
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    answers = await asyncio.gather(*(chat(client, f"n{n}") for n in range(6)))
    watcher.cancel()

    assert [a.status_code for a in answers] == [200] * 6
    assert [a.json()["choices"][0]["message"]["content"] for a in answers] == [
        f"n{n}" for n in range(6)
    ]
    assert peak == 2
    assert gates.in_flight(project_id, "chat") == 0


async def test_a_cache_hit_does_not_wait_for_a_slot(env: Env) -> None:
    env.deploy(
        "chat",
        (env.version("bot", "mock://echo", latency_ms=300), 100),
        limits=DeploymentLimits(max_concurrency=1, queue_timeout_s=0.02),
        cache=CachePolicy(ttl_s=60),
    )
    client = env.http()
    body = {"model": "chat", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}
    assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
    slow = asyncio.create_task(chat(client, "something else"))
    gates, project_id = env.services.gateway.limits.gates, env.app_key.principal.project_id
    await until(lambda: gates.in_flight(project_id, "chat") == 1)

    cached = await client.post("/v1/chat/completions", json=body)

    assert cached.status_code == 200
    assert cached.headers["x-modelcycle-cache"] == "hit"
    assert (await slow).status_code == 200


async def test_a_waiter_that_is_cancelled_leaves_the_line() -> None:
    gate = Gate()
    await gate.enter(1, 1.0, "chat")
    waiter = asyncio.create_task(gate.enter(1, 5.0, "chat"))
    await asyncio.sleep(0.01)
    assert gate.waiting == 1
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert gate.waiting == 0
    gate.leave(1)
    assert gate.in_flight == 0
