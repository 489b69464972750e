"""Core value types shared by every layer."""

from __future__ import annotations

import enum
import re
from typing import Any, TypeAlias

from pydantic import BaseModel, ConfigDict, model_validator

JSONValue: TypeAlias = Any
"""Any value that JSON can represent (pydantic validates the real shape)."""

JSONObject: TypeAlias = dict[str, Any]

NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$"
"""Names of models, aliases, projects: lowercase letters, digits, ``.``, ``_``, ``-``."""

NAME_RE = re.compile(NAME_PATTERN)

MAX_INT32 = 2**31 - 1
"""Largest id or version number: integer columns are 32-bit on PostgreSQL."""


class Role(enum.StrEnum):
    """What an API key may do, from most to least powerful."""

    ADMIN = "admin"
    """Everything in its project, including keys and the audit log."""
    MAINTAINER = "maintainer"
    """Register models and versions, move aliases, change deployments."""
    VIEWER = "viewer"
    """Read everything in its project; change nothing."""
    APP = "app"
    """Inference only: the OpenAI-compatible endpoints."""

    @property
    def rank(self) -> int:
        """Higher ranks include every permission of the lower ones."""
        return _RANKS[self]

    def allows(self, required: Role) -> bool:
        """Whether a key with this role may do what ``required`` may do."""
        return self.rank >= required.rank


_RANKS = {Role.APP: 0, Role.VIEWER: 1, Role.MAINTAINER: 2, Role.ADMIN: 3}


class BackendKind(enum.StrEnum):
    """The engine that runs inference for a model version."""

    LLAMACPP = "llamacpp"
    TRANSFORMERS = "transformers"
    OPENAI = "openai"
    RAY = "ray"
    MOCK = "mock"


class VersionStatus(enum.StrEnum):
    """Life state of a model version."""

    ACTIVE = "active"
    ARCHIVED = "archived"


ROOT_PROJECT = "default"
"""The project created on first start; its admins manage every project."""


def _nul_path(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_path(key, path) or _nul_path(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


class RequestBody(BaseModel):
    """Base of every request body: unknown fields and NUL characters are refused.

    PostgreSQL cannot store NUL in text or JSONB, so it is rejected up front with a
    400 naming the field instead of failing inside the database.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul_characters(cls, data: Any) -> Any:
        found = _nul_path(data, "")
        if found is not None:
            raise ValueError(f"{found or 'value'} contains a NUL character (\\u0000)")
        return data
