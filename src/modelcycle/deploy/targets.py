"""Targets (``MODEL@VERSION`` or ``MODEL@ALIAS``) and their resolution to versions.

A reference made only of digits is a version number; anything else is an alias
name. A version pinned by number never changes under a deployment; an alias
target follows the alias as it moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelcycle.errors import InvalidInput, NotFound
from modelcycle.registry import queries
from modelcycle.store.tables import AliasRow, ModelVersionRow
from modelcycle.types import MAX_INT32, VersionStatus


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed target: a model and either a version number or an alias."""

    model: str
    version: int | None
    alias: str | None

    def __str__(self) -> str:
        return f"{self.model}@{self.version if self.version is not None else self.alias}"


@dataclass(frozen=True, slots=True)
class ResolvedVersion:
    """The version a target points at now, with what a backend needs to serve it."""

    target: str
    model: str
    version: int
    backend: str
    source: str
    params: dict[str, Any]
    status: str


def parse_target(value: str, *, param: str | None = None) -> Target:
    """Split ``MODEL@REF``; ``InvalidInput`` naming the fix when it is malformed."""
    model, sep, ref = value.rpartition("@")
    if not sep or not model or not ref:
        raise InvalidInput(
            f"target {value!r} must look like MODEL@VERSION or MODEL@ALIAS, e.g. support-bot@3",
            param=param,
        )
    if ref.isdigit():
        number = int(ref)
        if not 1 <= number <= MAX_INT32:
            raise InvalidInput(f"target {value!r}: version must be 1 or more", param=param)
        return Target(model=model, version=number, alias=None)
    return Target(model=model, version=None, alias=ref)


def resolve(
    session: Session, project_id: int, value: str, *, param: str | None = None
) -> ResolvedVersion:
    """The version ``value`` points at in the project; ``InvalidInput`` naming the target."""
    target = parse_target(value, param=param)
    try:
        model = queries.find_model(session, project_id, target.model)
    except NotFound:
        raise InvalidInput(
            f"target '{value}': model '{target.model}' not found; "
            "list models with: modelcycle models list",
            param=param,
        ) from None
    if target.version is not None:
        row = session.execute(
            select(ModelVersionRow).where(
                ModelVersionRow.model_id == model.id, ModelVersionRow.version == target.version
            )
        ).scalar_one_or_none()
        if row is None:
            raise InvalidInput(
                f"target '{value}': model '{target.model}' has no version {target.version}",
                param=param,
            )
    else:
        row = session.execute(
            select(ModelVersionRow)
            .join(AliasRow, AliasRow.version_id == ModelVersionRow.id)
            .where(AliasRow.model_id == model.id, AliasRow.name == target.alias)
        ).scalar_one_or_none()
        if row is None:
            raise InvalidInput(
                f"target '{value}': model '{target.model}' has no alias '{target.alias}'",
                param=param,
            )
    return ResolvedVersion(
        target=value,
        model=model.name,
        version=row.version,
        backend=row.backend,
        source=row.source,
        params=dict(row.params),
        status=row.status,
    )


def resolve_active(
    session: Session, project_id: int, value: str, *, param: str | None = None
) -> ResolvedVersion:
    """Like ``resolve``, and refuse archived versions (they may not serve traffic)."""
    found = resolve(session, project_id, value, param=param)
    if found.status != VersionStatus.ACTIVE.value:
        raise InvalidInput(
            f"target '{value}': {found.model}@{found.version} is archived; "
            f"restore it with: modelcycle models restore {found.model} {found.version}",
            param=param,
        )
    return found
