"""Public shapes of projects, API keys and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from modelcycle.types import NAME_PATTERN, RequestBody, Role


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind an API key."""

    key_id: int
    key_name: str
    prefix: str
    project_id: int
    project: str
    role: Role
    is_root: bool
    """An admin of the root project: may manage every project and its keys."""
    kind: str = "key"
    """``key`` for API keys, ``system`` for actions the platform takes itself."""
    deployments: frozenset[str] | None = None
    """The only deployments the key may call through ``/v1``; ``None``: every one."""

    @property
    def actor(self) -> str:
        """How the caller is named in the audit log (never the key itself)."""
        return f"{self.kind}:{self.prefix}"

    def may_call(self, deployment: str) -> bool:
        """Whether the key's allowlist (if any) names ``deployment``."""
        return self.deployments is None or deployment in self.deployments


class ProjectCreate(RequestBody):
    """Body of ``POST /api/v1/projects``."""

    name: str = Field(pattern=NAME_PATTERN, description="Lowercase name, unique.")
    description: str = Field(default="", max_length=1000)


class Project(BaseModel):
    """A tenant."""

    id: int
    name: str
    description: str
    created_at: datetime


MAX_ALLOWED_DEPLOYMENTS = 100
DeploymentName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]


class KeyCreate(RequestBody):
    """Body of ``POST /api/v1/keys``."""

    name: str = Field(min_length=1, max_length=100, description="A label for people.")
    role: Role = Field(description="admin, maintainer, viewer or app (inference only).")
    project: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Project of the key; the caller's own when omitted.",
    )
    expires_at: datetime | None = Field(
        default=None, description="When the key stops working (ISO 8601 with offset)."
    )
    deployments: list[DeploymentName] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ALLOWED_DEPLOYMENTS,
        description="The only deployments the key may call through /v1 (names need not "
        "exist yet); omitted: every deployment of the project, or the creating key's own "
        "allowlist when it has one.",
    )

    @field_validator("deployments")
    @classmethod
    def _sorted(cls, names: list[str] | None) -> list[str] | None:
        """Sorted and without repeats, so that equal allowlists compare (and audit) equal."""
        return None if names is None else sorted(set(names))


MAX_GRACE_S = 7 * 24 * 3600


class KeyRotate(RequestBody):
    """Body of ``POST /api/v1/keys/{id}/rotate``."""

    grace_s: int = Field(
        default=0,
        ge=0,
        le=MAX_GRACE_S,
        description="Seconds the old key keeps working (0: revoked at once; at most 7 days).",
    )
    expires_at: datetime | None = Field(
        default=None,
        description="When the new key stops working; the old key's expiry when omitted.",
    )


class ApiKey(BaseModel):
    """An API key as the API shows it: never the secret, only its prefix."""

    id: int
    name: str
    prefix: str
    role: Role
    project: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    deployments: list[str] | None = None
    """The only deployments the key may call through ``/v1``; ``None``: every one."""
    rotated_from: int | None = None
    """The id of the key this one replaced by rotation."""


class CreatedApiKey(ApiKey):
    """A new key: ``key`` is shown this once and stored only as a hash."""

    key: str


class RotatedApiKey(CreatedApiKey):
    """The key a rotation made (``key`` shown this once) and the key it replaced."""

    previous: ApiKey
    """The old key: revoked now, or expiring at the end of the grace period."""


class WhoAmI(BaseModel):
    """The caller's own key, role and project."""

    key_id: int
    name: str
    prefix: str
    role: Role
    project: str
    is_root: bool
    deployments: list[str] | None = None
    """The only deployments the key may call through ``/v1``; ``None``: every one."""
