"""Weighted routing (seeded), sticky users, and changes that take effect at once."""

from __future__ import annotations

import random
from collections import Counter

from gateway.harness import Env
from modelcycle.backends import GenerationParams, Message
from modelcycle.deploy import DeploymentConfig, Route
from modelcycle.gateway import InferenceRequest, choose, plan, sticky_point

CANARY = DeploymentConfig(
    routes=[Route(target="bot@1", weight=90), Route(target="bot@2", weight=10)],
    fallbacks=["bot@1", "bot@3"],
)


def request(user: str | None = None, deployment: str = "chat") -> InferenceRequest:
    return InferenceRequest(
        endpoint="chat.completions",
        deployment=deployment,
        messages=(Message("user", "hi"),),
        prompt=None,
        params=GenerationParams(),
        user=user,
        stream=False,
    )


def test_weight_bands_pick_the_route() -> None:
    assert [choose(CANARY, point) for point in (0, 89.99, 90, 99.99)] == [0, 0, 1, 1]
    staged = DeploymentConfig(
        routes=[Route(target="a@1", weight=100), Route(target="a@2", weight=0)]
    )
    assert {choose(staged, p / 10) for p in range(1000)} == {0}


def test_a_seeded_rng_splits_traffic_as_configured() -> None:
    rng = random.Random(1234)
    counts = Counter(plan(CANARY, "chat", None, rng)[0].kind for _ in range(20_000))
    assert abs(counts["canary"] / 20_000 - 0.10) < 0.01
    assert counts["primary"] + counts["canary"] == 20_000


def test_the_plan_is_the_route_then_the_fallbacks_without_repeating_it() -> None:
    primary = plan(CANARY, "chat", None, random.Random(0))  # 0.84 * 100 -> primary
    assert [(a.target, a.kind) for a in primary] == [
        ("bot@1", "primary"),
        ("bot@3", "fallback"),
    ]


def test_sticky_users_always_get_the_same_route() -> None:
    sticky = CANARY.model_copy(update={"sticky": True})
    rng = random.Random(5)
    for user in (f"user-{n}" for n in range(200)):
        kinds = {plan(sticky, "chat", user, rng)[0].kind for _ in range(5)}
        assert len(kinds) == 1
    share = sum(sticky_point("chat", f"user-{n}") >= 90 for n in range(5000)) / 5000
    assert abs(share - 0.10) < 0.02


async def test_the_gateway_splits_real_requests_by_weight(env: Env) -> None:
    stable = env.version("bot", "mock://script?reply=stable")
    canary = env.version("bot", "mock://script?reply=canary")
    env.deploy("chat", (stable, 80), (canary, 20))
    env.services.gateway.rng = random.Random(42)

    served = [
        await env.services.gateway.generate(env.app_key.principal, request()) for _ in range(500)
    ]

    counts = Counter((s.version, s.route, s.completion.text) for s in served)
    assert set(counts) == {(1, "primary", "stable"), (2, "canary", "canary")}
    assert 0.15 < counts[(2, "canary", "canary")] / 500 < 0.25
    by_route = Counter(event.route for event in env.finished.events)
    assert by_route == Counter(route for _, route, _ in counts.elements())


async def test_changes_apply_to_the_next_request_without_restart(env: Env) -> None:
    one = env.version("bot", "mock://script?reply=one")
    two = env.version("bot", "mock://script?reply=two")
    env.services.aliases.set(env.admin.principal, "bot", "production", 1)
    env.deploy("chat", ("bot@production", 100))
    env.deploy("pinned", (one, 100))
    gateway, app = env.services.gateway, env.app_key.principal

    assert (await gateway.generate(app, request())).completion.text == "one"
    env.services.aliases.set(env.admin.principal, "bot", "production", 2)
    assert (await gateway.generate(app, request())).completion.text == "two"

    env.services.deployments.update(
        env.admin.principal, "pinned", DeploymentConfig(routes=[Route(target=two, weight=100)])
    )
    assert (await gateway.generate(app, request(deployment="pinned"))).completion.text == "two"
