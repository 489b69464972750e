"""Public shapes of models, versions, aliases and lineage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from modelcycle.types import MAX_INT32, NAME_PATTERN, BackendKind, RequestBody, VersionStatus


class ModelCreate(RequestBody):
    """Body of ``POST /api/v1/models``."""

    name: str = Field(pattern=NAME_PATTERN, description="Lowercase name, unique in the project.")
    description: str = Field(default="", max_length=2000)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form tags.")


class ModelUpdate(RequestBody):
    """Body of ``PATCH /api/v1/models/{name}``: only the fields given change."""

    description: str | None = Field(default=None, max_length=2000)
    metadata: dict[str, Any] | None = None


class Model(BaseModel):
    """A named model and a summary of its versions."""

    name: str
    description: str
    metadata: dict[str, Any]
    created_at: datetime
    latest_version: int | None
    aliases: dict[str, int] = Field(description="Alias name -> version it points at.")


class VersionRef(RequestBody):
    """A version of some model, e.g. the parent of another."""

    model: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1, le=MAX_INT32)


class VersionCreate(RequestBody):
    """Body of ``POST /api/v1/models/{name}/versions``; the model is created if new."""

    source: str = Field(
        min_length=1,
        max_length=2000,
        description="Where the weights or the endpoint are: a file path, a directory, a URL.",
    )
    backend: BackendKind = Field(description="Engine that serves this version.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Serving parameters: system prompt, temperature, adapter, prompt format...",
    )
    parent: VersionRef | None = Field(default=None, description="Version this one derives from.")
    description: str = Field(default="", max_length=2000)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ModelVersion(BaseModel):
    """An immutable version of a model."""

    model: str
    version: int
    source: str
    backend: BackendKind
    params: dict[str, Any]
    parent: VersionRef | None
    metadata: dict[str, Any]
    status: VersionStatus
    aliases: list[str]
    created_by: str
    created_at: datetime


class AliasSet(RequestBody):
    """Body of ``PUT /api/v1/models/{name}/aliases/{alias}``."""

    version: int = Field(ge=1, le=MAX_INT32, description="Version the alias should point at.")


class Alias(BaseModel):
    """Where an alias points now."""

    model: str
    alias: str
    version: int
    updated_at: datetime


class AliasMove(BaseModel):
    """One move of an alias (``to_version`` is null when it was removed)."""

    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    at: datetime


class LineageEdge(BaseModel):
    """A link from a version to a record of another stage."""

    relation: str
    target_kind: str
    target_ref: str
    metadata: dict[str, Any]
    created_at: datetime


class Lineage(BaseModel):
    """A version, its ancestors (parent first) and its links to other records."""

    version: VersionRef
    ancestors: list[VersionRef]
    edges: list[LineageEdge]
