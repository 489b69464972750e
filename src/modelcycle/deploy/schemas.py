"""Public shapes of deployments: the routing configuration and its history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from modelcycle.types import NAME_PATTERN, RequestBody

_NAME = NAME_PATTERN.removeprefix("^").removesuffix("$")

TARGET_PATTERN = f"^{_NAME}@{_NAME}$"
"""``MODEL@VERSION`` (digits: a version number) or ``MODEL@ALIAS`` (anything else)."""

TargetStr = Annotated[str, StringConstraints(pattern=TARGET_PATTERN, max_length=129)]

MAX_ROUTES = 10
MAX_FALLBACKS = 5

RevisionAction = Literal["create", "update", "promote", "rollback"]


class Route(RequestBody):
    """One weighted destination of a deployment's traffic."""

    target: str = Field(
        pattern=TARGET_PATTERN,
        max_length=129,
        description="MODEL@VERSION (e.g. support-bot@3) or MODEL@ALIAS (e.g. support-bot@prod).",
    )
    weight: int = Field(
        ge=0,
        le=100,
        description="Percent of requests sent here; the weights of all routes sum to 100.",
    )


MAX_PER_MINUTE = 10**12
"""Largest requests- or tokens-per-minute limit accepted."""


class DeploymentLimits(RequestBody):
    """Rate and concurrency limits of a deployment (``None``: no limit of that kind).

    Rates are per minute and refill continuously (GCRA): a full minute's worth
    may come in one burst, after which requests are admitted as the budget
    refills. Token limits count the prompt (estimated) up front and the real
    usage once the answer is known.
    """

    rpm: int | None = Field(
        default=None, ge=1, le=MAX_PER_MINUTE, description="Requests per minute, all keys together."
    )
    tpm: int | None = Field(
        default=None, ge=1, le=MAX_PER_MINUTE, description="Tokens per minute, all keys together."
    )
    key_rpm: int | None = Field(
        default=None, ge=1, le=MAX_PER_MINUTE, description="Requests per minute for each API key."
    )
    key_tpm: int | None = Field(
        default=None, ge=1, le=MAX_PER_MINUTE, description="Tokens per minute for each API key."
    )
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Most requests in flight at once in each gateway process; "
        "more wait up to queue_timeout_s, then get 429.",
    )
    queue_timeout_s: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description="Longest wait for a free slot under max_concurrency, in seconds.",
    )


class CachePolicy(RequestBody):
    """The exact-match response cache of a deployment (off unless ``ttl_s`` > 0).

    Only deterministic requests are cached: ``temperature`` 0 (the request's,
    or the version's default) or an explicit ``seed``.
    """

    ttl_s: float = Field(
        default=0,
        ge=0,
        le=30 * 86400,
        description="Seconds an answer stays reusable; 0 turns the cache off.",
    )


class BreakerPolicy(RequestBody):
    """The circuit breaker of each version the deployment routes to.

    A version that fails ``failures`` times in a row, or (with ``error_rate``)
    more than that share of at least ``min_requests`` calls within
    ``window_s``, is taken out of routing for ``cooldown_s``; then one probe
    request at a time is let through, and the first success brings it back.
    """

    failures: int = Field(
        default=5, ge=0, le=10_000, description="Consecutive failures that open it; 0: never."
    )
    error_rate: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Share of failed calls within window_s that opens it; None: not used.",
    )
    window_s: float = Field(
        default=60.0, gt=0, le=3600, description="Window of the error rate, in seconds."
    )
    min_requests: int = Field(
        default=10, ge=1, le=100_000, description="Calls in the window before the rate counts."
    )
    cooldown_s: float = Field(
        default=10.0, gt=0, le=3600, description="Seconds out of routing before a probe."
    )

    @property
    def enabled(self) -> bool:
        """Whether the breaker can open at all."""
        return self.failures > 0 or self.error_rate is not None


class DeploymentConfig(RequestBody):
    """How a deployment routes requests: the body of ``PUT /api/v1/deployments/{name}``.

    The first route is the primary; any other route with a weight is a canary.
    A target given by number stays pinned; one given by alias follows the alias.
    """

    routes: list[Route] = Field(
        min_length=1,
        max_length=MAX_ROUTES,
        description="Weighted destinations; the first is the primary, the others canaries.",
    )
    shadow: str | None = Field(
        default=None,
        pattern=TARGET_PATTERN,
        max_length=129,
        description="A target that receives a copy of live traffic; its answers are never "
        "returned to the caller.",
    )
    fallbacks: list[TargetStr] = Field(
        default_factory=list,
        max_length=MAX_FALLBACKS,
        description="Targets tried in order when the chosen route fails.",
    )
    timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="Longest wait for one backend call, in seconds."
    )
    retries: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Extra attempts on the same target after a failure, before the fallbacks.",
    )
    sticky: bool = Field(
        default=False,
        description="Send every request of one OpenAI `user` to the same route.",
    )
    limits: DeploymentLimits = Field(
        default_factory=DeploymentLimits,
        description="Requests and tokens per minute (per deployment and per key), and the "
        "concurrency limit.",
    )
    cache: CachePolicy = Field(
        default_factory=CachePolicy, description="Exact-match response cache (off by default)."
    )
    breaker: BreakerPolicy = Field(
        default_factory=BreakerPolicy,
        description="Takes a failing version out of routing, then probes it back in.",
    )
    guard: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        max_length=64,
        description="The guard policy (by name, see /api/v1/guard/policies) run on every "
        "request's input and output; None: no guard.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentConfig:
        total = sum(route.weight for route in self.routes)
        if total != 100:
            raise ValueError(f"route weights must sum to 100 (they sum to {total})")
        targets = [route.target for route in self.routes]
        if len(set(targets)) != len(targets):
            raise ValueError("each target may appear in routes only once")
        if self.routes[0].weight == 0:
            raise ValueError("the first route is the primary; give it a weight above 0")
        if len(set(self.fallbacks)) != len(self.fallbacks):
            raise ValueError("each fallback may appear only once")
        return self

    def targets(self) -> list[str]:
        """Every target the configuration names: routes, shadow, then fallbacks."""
        out = [route.target for route in self.routes]
        if self.shadow:
            out.append(self.shadow)
        out.extend(self.fallbacks)
        return out


class DeploymentSpec(DeploymentConfig):
    """A new deployment: the body of ``POST /api/v1/deployments``."""

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Unique in the project; clients pass it as the `model` of OpenAI requests.",
    )

    def config(self) -> DeploymentConfig:
        """The routing configuration without the name."""
        return DeploymentConfig.model_validate(self.model_dump(exclude={"name"}))


class Deployment(BaseModel):
    """A deployment and the configuration in force."""

    name: str
    revision: int = Field(description="Counts configuration changes, starting at 1.")
    spec: DeploymentConfig
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


def single_route(target: str, *, actor: str, retries: int | None = None) -> Deployment:
    """An unstored deployment sending everything to ``target`` (no guard, no limits).

    What evaluation and prompt search serve a version through when no deployment
    serves it: the gateway's path for a stored deployment, with this configuration.
    """
    now = datetime.now(UTC)
    config = DeploymentConfig(routes=[Route(target=target, weight=100)])
    if retries is not None:
        config = config.model_copy(update={"retries": retries})
    return Deployment(
        name=target,
        revision=1,
        spec=config,
        created_by=actor,
        created_at=now,
        updated_by=actor,
        updated_at=now,
    )


class DeploymentRevision(BaseModel):
    """One configuration a deployment has had."""

    revision: int
    action: RevisionAction
    spec: DeploymentConfig
    actor: str
    at: datetime
