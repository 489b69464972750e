"""Models, versions, aliases and lineage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from modelcycle.api.deps import CursorQuery, LimitQuery, PrincipalDep, ServicesDep
from modelcycle.api.pages import PageOut, page_out
from modelcycle.registry import (
    Alias,
    AliasMove,
    AliasSet,
    Lineage,
    Model,
    ModelCreate,
    ModelUpdate,
    ModelVersion,
    VersionCreate,
)
from modelcycle.types import MAX_INT32, NAME_PATTERN, VersionStatus

router = APIRouter(prefix="/api/v1/models", tags=["registry"])

ModelName = Annotated[str, Path(pattern=NAME_PATTERN, description="Model name.")]
AliasName = Annotated[str, Path(pattern=NAME_PATTERN, description="Alias name.")]
VersionNumber = Annotated[int, Path(ge=1, le=MAX_INT32, description="Version number.")]


@router.post("", response_model=Model, status_code=status.HTTP_201_CREATED)
def create_model(body: ModelCreate, principal: PrincipalDep, services: ServicesDep) -> Model:
    """Create an empty model (registering a version also creates it)."""
    return services.registry.create_model(principal, body)


@router.get("", response_model=PageOut[Model])
def list_models(
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> PageOut[Model]:
    """Models of the caller's project."""
    return page_out(services.registry.list_models(principal, cursor=cursor, limit=limit))


@router.get("/{name}", response_model=Model)
def get_model(name: ModelName, principal: PrincipalDep, services: ServicesDep) -> Model:
    """One model, its latest version and aliases."""
    return services.registry.get_model(principal, name)


@router.patch("/{name}", response_model=Model)
def update_model(
    name: ModelName, body: ModelUpdate, principal: PrincipalDep, services: ServicesDep
) -> Model:
    """Change a model's description or metadata."""
    return services.registry.update_model(principal, name, body)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(name: ModelName, principal: PrincipalDep, services: ServicesDep) -> Response:
    """Delete a model without versions."""
    services.registry.delete_model(principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/versions", response_model=ModelVersion, status_code=status.HTTP_201_CREATED)
def register_version(
    name: ModelName, body: VersionCreate, principal: PrincipalDep, services: ServicesDep
) -> ModelVersion:
    """Register the next immutable version (the model is created if new)."""
    return services.registry.register_version(principal, name, body)


@router.get("/{name}/versions", response_model=PageOut[ModelVersion])
def list_versions(
    name: ModelName,
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
    include_archived: Annotated[bool, Query()] = True,
) -> PageOut[ModelVersion]:
    """Versions of a model, oldest first."""
    return page_out(
        services.registry.list_versions(
            principal, name, cursor=cursor, limit=limit, include_archived=include_archived
        )
    )


@router.get("/{name}/versions/{version}", response_model=ModelVersion)
def get_version(
    name: ModelName, version: VersionNumber, principal: PrincipalDep, services: ServicesDep
) -> ModelVersion:
    """One version."""
    return services.registry.get_version(principal, name, version)


@router.delete("/{name}/versions/{version}", status_code=status.HTTP_204_NO_CONTENT)
def delete_version(
    name: ModelName, version: VersionNumber, principal: PrincipalDep, services: ServicesDep
) -> Response:
    """Delete a version; refused (409) while an alias, deployment or child uses it."""
    services.registry.delete_version(principal, name, version)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/versions/{version}/archive", response_model=ModelVersion)
def archive_version(
    name: ModelName, version: VersionNumber, principal: PrincipalDep, services: ServicesDep
) -> ModelVersion:
    """Archive a version: kept for lineage, no alias may point at it."""
    return services.registry.set_status(principal, name, version, VersionStatus.ARCHIVED)


@router.post("/{name}/versions/{version}/restore", response_model=ModelVersion)
def restore_version(
    name: ModelName, version: VersionNumber, principal: PrincipalDep, services: ServicesDep
) -> ModelVersion:
    """Make an archived version active again."""
    return services.registry.set_status(principal, name, version, VersionStatus.ACTIVE)


@router.get("/{name}/versions/{version}/lineage", response_model=Lineage)
def version_lineage(
    name: ModelName, version: VersionNumber, principal: PrincipalDep, services: ServicesDep
) -> Lineage:
    """Ancestors and links to datasets, tuning jobs and evaluations."""
    return services.aliases.lineage(principal, name, version)


@router.get("/{name}/aliases", response_model=list[Alias])
def list_aliases(name: ModelName, principal: PrincipalDep, services: ServicesDep) -> list[Alias]:
    """Every alias of the model."""
    return services.aliases.list(principal, name)


@router.get("/{name}/alias-history", response_model=list[AliasMove])
def alias_history(
    name: ModelName,
    principal: PrincipalDep,
    services: ServicesDep,
    alias: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
) -> list[AliasMove]:
    """Every alias move of the model (or of one alias), oldest first."""
    return services.aliases.history(principal, name, alias)


@router.get("/{name}/aliases/{alias}", response_model=Alias)
def get_alias(
    name: ModelName, alias: AliasName, principal: PrincipalDep, services: ServicesDep
) -> Alias:
    """Where an alias points."""
    return services.aliases.get(principal, name, alias)


@router.put("/{name}/aliases/{alias}", response_model=Alias)
def set_alias(
    name: ModelName,
    alias: AliasName,
    body: AliasSet,
    principal: PrincipalDep,
    services: ServicesDep,
) -> Alias:
    """Point an alias at a version (created if new); the move is recorded."""
    return services.aliases.set(principal, name, alias, body.version)


@router.delete("/{name}/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT)
def delete_alias(
    name: ModelName, alias: AliasName, principal: PrincipalDep, services: ServicesDep
) -> Response:
    """Remove an alias; its history stays."""
    services.aliases.delete(principal, name, alias)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
