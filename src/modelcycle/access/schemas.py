"""Public shapes of projects, API keys and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

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

    @property
    def actor(self) -> str:
        """How the caller is named in the audit log (never the key itself)."""
        return f"{self.kind}:{self.prefix}"


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


class CreatedApiKey(ApiKey):
    """A new key: ``key`` is shown this once and stored only as a hash."""

    key: str


class WhoAmI(BaseModel):
    """The caller's own key, role and project."""

    key_id: int
    name: str
    prefix: str
    role: Role
    project: str
    is_root: bool
