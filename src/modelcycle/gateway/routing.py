"""Choosing where one request goes: a weighted route, then the fallbacks in order."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Literal

from modelcycle.deploy import DeploymentConfig

RouteKind = Literal["primary", "canary", "fallback", "shadow"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """A target to try, and why it is tried."""

    target: str
    kind: RouteKind


def sticky_point(deployment: str, user: str) -> float:
    """A stable point in [0, 100) for one user of one deployment (same route every time)."""
    digest = hashlib.blake2b(f"{deployment}\x00{user}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100


def choose(config: DeploymentConfig, point: float) -> int:
    """The index of the route whose weight band contains ``point`` (0 <= point < 100)."""
    cumulative = 0
    for index, route in enumerate(config.routes):
        cumulative += route.weight
        if point < cumulative and route.weight > 0:
            return index
    return 0


def plan(
    config: DeploymentConfig, deployment: str, user: str | None, rng: random.Random
) -> list[Attempt]:
    """The chosen route, then each fallback (skipping the chosen target)."""
    point = sticky_point(deployment, user) if config.sticky and user else rng.random() * 100
    index = choose(config, point)
    chosen = config.routes[index].target
    attempts = [Attempt(chosen, "primary" if index == 0 else "canary")]
    attempts.extend(Attempt(t, "fallback") for t in config.fallbacks if t != chosen)
    return attempts
