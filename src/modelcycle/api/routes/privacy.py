"""End users' data: erase it (right to erasure) or export it (right of access), admins only.

Both act on the caller's project. Raw-text storage is switched on the
monitoring policy (``PUT /api/v1/monitor/policy``, ``store_raw_text``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from modelcycle.api.deps import PrincipalDep, ServicesDep
from modelcycle.monitor.privacy_schemas import MAX_USER, Erasure, ErasureRequest, UserExport

router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"])


@router.post("/erase", response_model=Erasure)
def erase_user(body: ErasureRequest, principal: PrincipalDep, services: ServicesDep) -> Erasure:
    """Delete an end user's traces, feedback and derived data; counts per kind.

    Audited with a keyed hash of the user id, never the id. Safe to run again;
    ``dry_run`` counts without changing anything.
    """
    return services.privacy.erase(principal, body)


@router.get("/export", response_model=UserExport)
def export_user(
    principal: PrincipalDep,
    services: ServicesDep,
    user: Annotated[
        str, Query(min_length=1, max_length=MAX_USER, description="The end user's id.")
    ],
) -> UserExport:
    """Every trace (input and output as stored), feedback and derived data of an end user."""
    return services.privacy.export(principal, user)
