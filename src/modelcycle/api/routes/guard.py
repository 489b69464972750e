"""Guard: check a text against a policy; named policies; the installed detectors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from modelcycle.api.deps import CursorQuery, LimitQuery, PrincipalDep, ServicesDep
from modelcycle.api.pages import PageOut, page_out
from modelcycle.guard.schemas import (
    DetectorInfo,
    GuardCheckRequest,
    GuardCheckResponse,
    GuardPolicy,
    GuardPolicyCreate,
    GuardPolicySpec,
)
from modelcycle.types import MAX_INT32, NAME_PATTERN

router = APIRouter(prefix="/api/v1/guard", tags=["guard"])

PolicyName = Annotated[str, Path(pattern=NAME_PATTERN, description="Guard policy name.")]
RevisionQuery = Annotated[int | None, Query(ge=1, le=MAX_INT32)]


@router.post("/check", response_model=GuardCheckResponse)
def check_text(
    body: GuardCheckRequest, principal: PrincipalDep, services: ServicesDep
) -> GuardCheckResponse:
    """What a policy makes of a text: action, findings (never the text found), redacted text.

    The policy: ``policy``; else the guard of ``deployment`` (a deployment without
    one allows everything); else the project's policy ``default``; else modelcycle's
    built-in default. Any key may call it, ``app`` keys included.
    """
    return services.guard.check(principal, body)


@router.get("/detectors", response_model=list[DetectorInfo])
def list_detectors(principal: PrincipalDep, services: ServicesDep) -> list[DetectorInfo]:
    """The detectors a policy rule may name: the built-in ones and every plugin's."""
    return services.guard.detector_catalog(principal)


@router.post("/policies", response_model=GuardPolicy, status_code=status.HTTP_201_CREATED)
def create_policy(
    body: GuardPolicyCreate, principal: PrincipalDep, services: ServicesDep
) -> GuardPolicy:
    """Create a policy; 400 naming the rule when a detector or option is wrong."""
    return services.guard.create(principal, body)


@router.get("/policies", response_model=PageOut[GuardPolicy])
def list_policies(
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> PageOut[GuardPolicy]:
    """Policies of the caller's project, oldest first."""
    return page_out(services.guard.list(principal, cursor=cursor, limit=limit))


@router.get("/policies/{name}", response_model=GuardPolicy)
def get_policy(name: PolicyName, principal: PrincipalDep, services: ServicesDep) -> GuardPolicy:
    """One policy and its configuration in force."""
    return services.guard.get(principal, name)


@router.put("/policies/{name}", response_model=GuardPolicy)
def update_policy(
    name: PolicyName,
    body: GuardPolicySpec,
    principal: PrincipalDep,
    services: ServicesDep,
    expected_revision: RevisionQuery = None,
) -> GuardPolicy:
    """Replace a policy (a new revision); 409 if ``expected_revision`` is stale.

    Every deployment naming it runs the new revision within seconds.
    """
    return services.guard.update(principal, name, body, expected_revision=expected_revision)


@router.delete("/policies/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_policy(name: PolicyName, principal: PrincipalDep, services: ServicesDep) -> Response:
    """Delete a policy; 409 while a deployment names it."""
    services.guard.delete(principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
