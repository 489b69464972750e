"""Rate limits: requests and tokens per minute per deployment, key and project; 429 + headers.

Time is an injected clock: recovery after the window is tested by moving it,
never by sleeping.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from gateway.harness import Env
from modelcycle.deploy import DeploymentLimits, DeploymentSpec, Route
from modelcycle.gateway.limits import Limits
from modelcycle.gateway.ratelimit_gcra import Bucket, MemoryStore
from modelcycle.gateway.ratelimit_openai import reset_text
from modelcycle.settings import ProjectLimits
from modelcycle.testing import make_key, make_project, make_settings, register
from modelcycle.types import Role

HI = [{"role": "user", "content": "hi"}]


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(env: Env) -> Clock:
    clock = Clock()
    env.services.gateway.limits = Limits(clock=clock)
    return clock


def with_settings(env: Env, clock: Clock, tmp_path: Path, **values: object) -> None:
    settings = make_settings(tmp_path / "other", **values)
    env.services.gateway.limits = Limits(settings=settings, clock=clock)


async def chat(
    env: Env, key: str | None = None, model: str = "chat", content: str = "hi"
) -> httpx.Response:
    return await env.http(key).post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}]},
    )


# -- the algorithm -----------------------------------------------------------------------


def test_a_full_budget_may_be_spent_at_once_then_refills_one_unit_at_a_time() -> None:
    store, bucket = MemoryStore(), Bucket("d", "requests", 3, 1, "deployment 'd'")
    verdicts = [store.acquire_now([bucket], 100.0) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.states[0].remaining for v in verdicts[:3]] == [2, 1, 0]
    assert verdicts[3].retry_after_s == pytest.approx(20.0)  # 60 s / 3 requests
    assert not store.acquire_now([bucket], 119.9).allowed
    assert store.acquire_now([bucket], 120.0).allowed
    assert not store.acquire_now([bucket], 120.0).allowed


def test_no_second_budget_appears_at_a_window_edge() -> None:
    # A fixed window would allow 3 at 59.9 s and 3 more at 60.1 s: six in 0.2 s.
    store, bucket = MemoryStore(), Bucket("d", "requests", 3, 1, "deployment 'd'")
    burst = [store.acquire_now([bucket], 59.9).allowed for _ in range(3)]
    after_edge = [store.acquire_now([bucket], 60.1).allowed for _ in range(3)]
    assert burst == [True, True, True]
    assert after_edge == [False, False, False]
    # Over any 60 s the total stays at the budget plus what refilled meanwhile.
    later = [store.acquire_now([bucket], 119.9).allowed for _ in range(4)]
    assert later == [True, True, True, False]


def test_all_buckets_are_charged_or_none() -> None:
    store = MemoryStore()
    roomy, tight = Bucket("a", "requests", 10, 1, "a"), Bucket("b", "requests", 1, 1, "b")
    assert store.acquire_now([roomy, tight], 0.0).allowed
    refused = store.acquire_now([roomy, tight], 0.0)
    assert not refused.allowed
    assert refused.denied == tight
    assert refused.states[0].remaining == 9  # the refused request took nothing from `a`


def test_reset_durations_are_written_like_openai() -> None:
    assert [reset_text(s) for s in (0.0123, 1.5, 20.0, 360.0, 61.25)] == [
        "13ms",
        "1.5s",
        "20s",
        "6m0s",
        "1m1.25s",
    ]


# -- over HTTP ---------------------------------------------------------------------------


async def test_the_deployment_rpm_answers_429_with_openai_headers_and_recovers(
    env: Env, clock: Clock
) -> None:
    env.deploy("chat", (env.version("bot"), 100), limits=DeploymentLimits(rpm=2))

    first, second, third = [await chat(env) for _ in range(3)]

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"] == "30s"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert second.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert third.status_code == 429
    error = third.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "deployment 'chat'" in error["message"]
    assert "requests per min (RPM): Limit 2" in error["message"]
    assert third.headers["retry-after"] == "30"
    assert third.headers["retry-after-ms"] == "30000"
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    refused = env.finished.events[-1]
    assert (refused.status, refused.status_code, refused.error_type) == (
        "error",
        429,
        "rate_limit_exceeded",
    )

    clock.advance(29.9)
    assert (await chat(env)).status_code == 429
    clock.advance(0.1)
    again = await chat(env)
    assert again.status_code == 200
    assert again.headers["x-ratelimit-remaining-requests"] == "0"


async def test_the_official_sdk_raises_rate_limit_error(env: Env, clock: Clock) -> None:
    env.deploy("chat", (env.version("bot"), 100), limits=DeploymentLimits(rpm=1))
    client = env.openai()
    await client.chat.completions.create(model="chat", messages=HI)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="chat", messages=HI)  # type: ignore[arg-type]
    assert caught.value.status_code == 429
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["retry-after"] == "60"


async def test_key_rpm_limits_each_key_alone_and_rpm_all_keys_together(
    env: Env, clock: Clock
) -> None:
    env.deploy("chat", (env.version("bot"), 100), limits=DeploymentLimits(rpm=3, key_rpm=2))
    other = make_key(env.services, Role.APP).key

    assert [(await chat(env)).status_code for _ in range(3)] == [200, 200, 429]
    refused = await chat(env)
    assert "this API key on deployment 'chat'" in refused.json()["error"]["message"]
    assert (await chat(env, other)).status_code == 200  # its own per-key budget
    deployment_full = await chat(env, other)
    assert deployment_full.status_code == 429
    assert "for deployment 'chat'" in deployment_full.json()["error"]["message"]


async def test_project_defaults_span_every_deployment_and_spare_other_projects(
    env: Env, clock: Clock, tmp_path: Path
) -> None:
    with_settings(env, clock, tmp_path, project_rpm=2)
    target = env.version("bot")
    env.deploy("a", (target, 100))
    env.deploy("b", (target, 100))
    team = make_project(env.services)
    team_key = make_key(env.services, Role.ADMIN, team)
    register(env.services, team_key.principal, "bot")
    env.services.deployments.create(
        team_key.principal, DeploymentSpec(name="a", routes=[Route(target="bot@1", weight=100)])
    )

    assert (await chat(env, model="a")).status_code == 200
    assert (await chat(env, model="b")).status_code == 200
    refused = await chat(env, model="b")
    assert refused.status_code == 429
    assert "project 'default'" in refused.json()["error"]["message"]
    assert (await chat(env, team_key.key, model="a")).status_code == 200


async def test_named_project_limits_replace_the_defaults(
    env: Env, clock: Clock, tmp_path: Path
) -> None:
    with_settings(
        env, clock, tmp_path, key_rpm=100, project_limits={"default": ProjectLimits(key_rpm=1)}
    )
    env.deploy("a", (env.version("bot"), 100))
    env.deploy("b", (env.version("bot"), 100))
    assert (await chat(env, model="a")).status_code == 200
    refused = await chat(env, model="b")  # the key's budget covers every deployment
    assert refused.status_code == 429
    assert "Rate limit reached for this API key on" in refused.json()["error"]["message"]


async def test_a_limit_changed_through_the_api_applies_to_the_next_request(
    env: Env, clock: Clock
) -> None:
    env.deploy("chat", (env.version("bot"), 100))
    assert "x-ratelimit-limit-requests" not in (await chat(env)).headers
    current = env.services.deployments.get(env.admin.principal, "chat").spec
    changed = current.model_copy(update={"limits": DeploymentLimits(rpm=1)})
    admin = env.http(env.admin.key)
    response = await admin.put("/api/v1/deployments/chat", json=changed.model_dump(mode="json"))
    assert response.status_code == 200, response.text
    assert response.json()["spec"]["limits"]["rpm"] == 1
    assert (await chat(env)).status_code == 200
    assert (await chat(env)).status_code == 429
    audit = (await admin.get("/api/v1/audit", params={"action": "deployment.update"})).json()
    assert audit["data"][-1]["after"]["spec"]["limits"]["rpm"] == 1


# -- tokens ------------------------------------------------------------------------------


async def test_tokens_are_estimated_up_front_and_reconciled_with_real_usage(
    env: Env, clock: Clock
) -> None:
    # The echo mock counts words: 8 prompt + 8 completion tokens = 16 real tokens,
    # while 8 words of 4 letters and spaces are estimated at (39 + 4) / 4 -> 11.
    env.deploy("chat", (env.version("bot"), 100), limits=DeploymentLimits(tpm=100))
    words = "abcd " * 7 + "abcd"

    first = await chat(env, content=words)
    assert first.headers["x-ratelimit-limit-tokens"] == "100"
    assert first.headers["x-ratelimit-remaining-tokens"] == str(100 - 11)
    assert first.json()["usage"]["total_tokens"] == 16

    second = await chat(env, content=words)
    # The first request now counts 16 (reconciled), the second its estimate.
    assert second.headers["x-ratelimit-remaining-tokens"] == str(100 - 16 - 11)
    third = await chat(env, content="x")
    assert third.headers["x-ratelimit-remaining-tokens"] == str(100 - 16 - 16 - 2)


async def test_a_large_answer_leaves_the_budget_in_debt_until_it_refills(
    env: Env, clock: Clock
) -> None:
    long_reply = "+".join(["word"] * 30)
    env.deploy(
        "chat",
        (env.version("bot", f"mock://script?reply={long_reply}"), 100),
        limits=DeploymentLimits(tpm=20),
    )
    assert (await chat(env)).status_code == 200  # estimated 2, really 1 + 30 = 31

    refused = await chat(env)
    assert refused.status_code == 429
    assert "tokens per min (TPM): Limit 20" in refused.json()["error"]["message"]
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    # 11 tokens of debt plus 2 for this request, at 3 s a token: 39 s.
    assert refused.headers["retry-after"] == "39"
    clock.advance(39)
    assert (await chat(env)).status_code == 200


async def test_a_failed_request_gives_its_tokens_back(env: Env, clock: Clock) -> None:
    flaky = env.version("bot", "mock://echo", fail_first=1)
    env.deploy("chat", (flaky, 100), limits=DeploymentLimits(tpm=10))
    # (36 + 4) / 4 = 10 tokens: the whole budget.
    assert (await chat(env, content="x" * 36)).status_code == 502
    # Nothing was generated, so the estimate came back: the budget is full again.
    served = await chat(env, content="x" * 36)
    assert served.status_code == 200
    assert served.headers["x-ratelimit-remaining-tokens"] == "0"
