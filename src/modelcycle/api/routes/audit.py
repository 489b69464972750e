"""The audit log: list, read, verify the hash chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from modelcycle.access import AuditEntry, AuditVerification
from modelcycle.api.deps import CursorQuery, LimitQuery, PrincipalDep, ServicesDep
from modelcycle.api.pages import PageOut, page_out
from modelcycle.types import MAX_INT32

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=PageOut[AuditEntry])
def list_audit(
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    target: Annotated[str | None, Query(max_length=300, description="Target prefix.")] = None,
) -> PageOut[AuditEntry]:
    """Audit entries of the caller's project, oldest first."""
    return page_out(
        services.audit.list(
            principal, action=action, actor=actor, target=target, cursor=cursor, limit=limit
        )
    )


@router.get("/verify", response_model=AuditVerification)
def verify_audit(principal: PrincipalDep, services: ServicesDep) -> AuditVerification:
    """Recompute the hash chain; report the first tampered or missing entry."""
    return services.audit.verify(principal)


@router.get("/{seq}", response_model=AuditEntry)
def get_audit(
    seq: Annotated[int, Path(ge=1, le=MAX_INT32)], principal: PrincipalDep, services: ServicesDep
) -> AuditEntry:
    """One audit entry."""
    return services.audit.get(principal, seq)
