"""Circuit breakers: a failing version leaves routing, then a probe brings it back."""

from __future__ import annotations

import logging
import random

import httpx
import pytest

from gateway.harness import Env
from modelcycle.backends import MockBackend
from modelcycle.deploy import BreakerPolicy
from modelcycle.gateway.breaker import Breakers
from modelcycle.gateway.limits import Limits

KEY = (1, "bot", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(env: Env) -> Clock:
    clock = Clock()
    env.services.gateway.limits = Limits(clock=clock)
    return clock


async def chat(env: Env) -> httpx.Response:
    return await env.http().post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    )


def mock(env: Env, source: str) -> MockBackend:
    backend = env.services.gateway.backends.get("mock", source, {})
    assert isinstance(backend, MockBackend)
    return backend


# -- the state machine -------------------------------------------------------------------


def test_consecutive_failures_open_then_one_probe_closes_it() -> None:
    clock = Clock()
    breakers, policy = Breakers(clock), BreakerPolicy(failures=3, cooldown_s=10)
    breakers.failure(KEY, policy)
    breakers.failure(KEY, policy)
    breakers.success(KEY, policy)  # a success resets the count
    for _ in range(2):
        breakers.failure(KEY, policy)
    assert breakers.allows(KEY, policy)
    breakers.failure(KEY, policy)
    assert breakers.state(KEY) == "open"
    assert not breakers.allows(KEY, policy)
    assert breakers.retry_after(KEY, policy) == pytest.approx(10)

    clock.now += 10
    assert breakers.allows(KEY, policy)
    assert breakers.state(KEY) == "half_open"
    assert breakers.begin(KEY, policy)  # the probe
    assert not breakers.allows(KEY, policy)  # one probe at a time
    assert not breakers.begin(KEY, policy)
    breakers.failure(KEY, policy)
    assert breakers.state(KEY) == "open"  # the probe failed: another cool-down

    clock.now += 10
    assert breakers.begin(KEY, policy)
    breakers.success(KEY, policy)
    assert breakers.state(KEY) == "closed"
    assert breakers.allows(KEY, policy)


def test_an_error_rate_over_the_window_opens_it() -> None:
    clock = Clock()
    breakers = Breakers(clock)
    policy = BreakerPolicy(failures=0, error_rate=0.5, min_requests=4, window_s=60)
    for ok in (True, False, True):
        breakers.success(KEY, policy) if ok else breakers.failure(KEY, policy)
    assert breakers.state(KEY) == "closed"  # 3 calls: below min_requests
    breakers.failure(KEY, policy)
    assert breakers.state(KEY) == "open"  # 2 of 4 failed

    other = (1, "bot", 2)
    for _ in range(3):
        breakers.failure(other, policy)
    clock.now += 61  # those failures left the window
    breakers.success(other, policy)
    breakers.failure(other, policy)
    assert breakers.state(other) == "closed"


def test_a_probe_that_ends_without_an_outcome_lets_another_probe() -> None:
    clock = Clock()
    breakers, policy = Breakers(clock), BreakerPolicy(failures=1, cooldown_s=1)
    breakers.failure(KEY, policy)
    clock.now += 1
    assert breakers.begin(KEY, policy)
    breakers.release(KEY)
    assert breakers.begin(KEY, policy)


def test_failures_zero_and_no_rate_never_open() -> None:
    breakers, policy = Breakers(Clock()), BreakerPolicy(failures=0)
    for _ in range(50):
        breakers.failure(KEY, policy)
    assert breakers.allows(KEY, policy)


# -- through the gateway -----------------------------------------------------------------


async def test_an_open_circuit_sends_traffic_to_the_fallback_then_a_probe_brings_it_back(
    env: Env, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="modelcycle.gateway.breaker")
    primary = env.version("bot", "mock://fail")
    env.deploy(
        "chat",
        (primary, 100),
        fallbacks=[env.version("spare", "mock://script?reply=spare")],
        breaker=BreakerPolicy(failures=2, cooldown_s=30),
    )
    broken = mock(env, "mock://fail")

    for _ in range(2):
        assert (await chat(env)).json()["choices"][0]["message"]["content"] == "spare"
    assert [e.attempts for e in env.finished.events] == [2, 2]
    assert len(broken.calls) == 2

    out = await chat(env)  # the circuit is open: the primary is not even called
    assert out.status_code == 200
    assert out.headers["x-modelcycle-route"] == "fallback"
    assert len(broken.calls) == 2
    event = env.finished.events[-1]
    assert (event.route, event.model, event.attempts) == ("fallback", "spare", 1)

    broken.fail = False  # the version recovers
    clock.now += 29
    await chat(env)
    assert len(broken.calls) == 2  # still cooling down
    clock.now += 1
    probe = await chat(env)
    assert probe.headers["x-modelcycle-route"] == "primary"
    assert len(broken.calls) == 3
    assert (await chat(env)).headers["x-modelcycle-route"] == "primary"

    changes = [r.getMessage() for r in caplog.records]
    assert len(changes) == 3
    assert "bot@1" in changes[0]
    assert "opened (2 failures in a row)" in changes[0]
    assert "half-open" in changes[1]
    assert "closed" in changes[2]


async def test_when_every_candidate_is_open_the_answer_is_503_with_retry_after(
    env: Env, clock: Clock
) -> None:
    env.deploy("chat", (env.version("bot", "mock://fail"), 100), breaker=BreakerPolicy(failures=1))
    assert (await chat(env)).status_code == 502
    refused = await chat(env)
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "circuit_open")
    assert refused.headers["retry-after"] == "10"
    assert env.finished.events[-1].attempts == 0
    assert len(mock(env, "mock://fail").calls) == 1


async def test_an_open_canary_gives_its_share_to_the_primary(env: Env, clock: Clock) -> None:
    stable = env.version("bot", "mock://script?reply=stable")
    canary = env.version("bot", "mock://fail")
    env.deploy("chat", (stable, 1), (canary, 99), breaker=BreakerPolicy(failures=1))
    env.services.gateway.rng = random.Random(0)  # draws 84.4 then 75.8: the canary twice
    assert (await chat(env)).status_code == 502  # the canary was chosen and failed
    answer = await chat(env)
    assert answer.status_code == 200
    assert answer.headers["x-modelcycle-route"] == "primary"
    assert len(mock(env, "mock://fail").calls) == 1


async def test_a_stream_that_breaks_counts_as_a_failure(env: Env, clock: Clock) -> None:
    cut = env.version("bot", "mock://echo", fail_mid_stream=1)
    env.deploy("chat", (cut, 100), breaker=BreakerPolicy(failures=1))
    payload = {"model": "chat", "messages": [{"role": "user", "content": "a b"}], "stream": True}
    async with env.http().stream("POST", "/v1/chat/completions", json=payload) as response:
        assert response.status_code == 200
        assert '"error"' in [line async for line in response.aiter_lines() if line][-1]
    assert (await chat(env)).status_code == 503
