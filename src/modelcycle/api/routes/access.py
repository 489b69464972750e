"""Projects, API keys and the caller's identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from modelcycle.access import (
    ApiKey,
    CreatedApiKey,
    KeyCreate,
    KeyRotate,
    Project,
    ProjectCreate,
    RotatedApiKey,
    WhoAmI,
)
from modelcycle.api.deps import CursorQuery, LimitQuery, PrincipalDep, ServicesDep
from modelcycle.api.pages import PageOut, page_out
from modelcycle.types import MAX_INT32, NAME_PATTERN

router = APIRouter(prefix="/api/v1", tags=["access"])

KeyId = Annotated[int, Path(ge=1, le=MAX_INT32)]


@router.get("/whoami", response_model=WhoAmI)
def whoami(principal: PrincipalDep) -> WhoAmI:
    """The key making the request: its name, prefix, role and project."""
    return WhoAmI(
        key_id=principal.key_id,
        name=principal.key_name,
        prefix=principal.prefix,
        role=principal.role,
        project=principal.project,
        is_root=principal.is_root,
        deployments=None if principal.deployments is None else sorted(principal.deployments),
    )


@router.post("/projects", response_model=Project, status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectCreate, principal: PrincipalDep, services: ServicesDep) -> Project:
    """Create a project (tenant). Root admins only."""
    return services.access.create_project(principal, body)


@router.get("/projects", response_model=list[Project])
def list_projects(principal: PrincipalDep, services: ServicesDep) -> list[Project]:
    """Projects the caller can see: all for root admins, else its own."""
    return services.access.list_projects(principal)


@router.post("/keys", response_model=CreatedApiKey, status_code=status.HTTP_201_CREATED)
def create_key(body: KeyCreate, principal: PrincipalDep, services: ServicesDep) -> CreatedApiKey:
    """Create an API key. The response holds the key itself, shown this once.

    Maintainers and admins create keys with a role at or below their own; a key
    limited to some deployments grants at most those.
    """
    return services.access.create_key(principal, body)


@router.get("/keys", response_model=PageOut[ApiKey])
def list_keys(
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
    project: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
) -> PageOut[ApiKey]:
    """Keys of the caller's project (root admins may name another project)."""
    return page_out(
        services.access.list_keys(principal, project=project, cursor=cursor, limit=limit)
    )


@router.get("/keys/{key_id}", response_model=ApiKey)
def get_key(key_id: KeyId, principal: PrincipalDep, services: ServicesDep) -> ApiKey:
    """One key (without its secret)."""
    return services.access.get_key(principal, key_id)


@router.delete("/keys/{key_id}", response_model=ApiKey)
def revoke_key(key_id: KeyId, principal: PrincipalDep, services: ServicesDep) -> ApiKey:
    """Revoke a key: it stops working at once; the record stays for the audit log.

    Maintainers and admins revoke keys with a role at or below their own.
    """
    return services.access.revoke_key(principal, key_id)


@router.post(
    "/keys/{key_id}/rotate", response_model=RotatedApiKey, status_code=status.HTTP_201_CREATED
)
def rotate_key(
    key_id: KeyId, principal: PrincipalDep, services: ServicesDep, body: KeyRotate | None = None
) -> RotatedApiKey:
    """Replace a key by a new one (same name, role, allowlist), shown this once.

    The old key is revoked at once, or keeps working ``grace_s`` seconds so that
    its users can switch over. Whoever may revoke the key may rotate it.
    """
    return services.access.rotate_key(principal, key_id, body or KeyRotate())
