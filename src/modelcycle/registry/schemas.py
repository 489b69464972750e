"""Public shapes of models, versions, aliases and lineage."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from modelcycle.types import MAX_INT32, NAME_PATTERN, BackendKind, RequestBody, VersionStatus

MAX_JSON_DEPTH = 32
"""Deepest nesting accepted in free-form metadata and params."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _check_value(value: Any, where: str, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{where} is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{where} is an integer outside the 64-bit range")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is NaN or Infinity, which JSON cannot carry")
    if isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(str(key), where)
            _check_value(item, f"{where}.{key}", depth + 1)


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where} holds text that is not valid Unicode") from None


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    # The audit hash (orjson) and both databases must store the value unchanged:
    # SQLite would turn NaN into null, PostgreSQL and orjson refuse the rest.
    for key, item in value.items():
        _check_text(str(key), "a key")
        _check_value(item, str(key), 1)
    return value


JSONDocument = Annotated[dict[str, Any], AfterValidator(_storable_json)]
"""A free-form JSON object that both databases and the audit log keep as given."""


class ModelCreate(RequestBody):
    """Body of ``POST /api/v1/models``."""

    name: str = Field(pattern=NAME_PATTERN, description="Lowercase name, unique in the project.")
    description: str = Field(default="", max_length=2000)
    metadata: JSONDocument = Field(default_factory=dict, description="Free-form tags.")


class ModelUpdate(RequestBody):
    """Body of ``PATCH /api/v1/models/{name}``: only the fields given change."""

    description: str | None = Field(default=None, max_length=2000)
    metadata: JSONDocument | None = None


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
    params: JSONDocument = Field(
        default_factory=dict,
        description="Serving parameters: system prompt, temperature, adapter, prompt format...",
    )
    parent: VersionRef | None = Field(default=None, description="Version this one derives from.")
    description: str = Field(default="", max_length=2000)
    metadata: JSONDocument = Field(default_factory=dict)


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
