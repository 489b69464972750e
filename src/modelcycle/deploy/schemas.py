"""Public shapes of deployments: the routing configuration and its history."""

from __future__ import annotations

from datetime import datetime
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


class DeploymentRevision(BaseModel):
    """One configuration a deployment has had."""

    revision: int
    action: RevisionAction
    spec: DeploymentConfig
    actor: str
    at: datetime
