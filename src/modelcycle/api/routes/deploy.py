"""Deployments: create, change weights/shadow/fallbacks, promote, roll back, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from modelcycle.api.deps import CursorQuery, LimitQuery, PrincipalDep, ServicesDep
from modelcycle.api.pages import PageOut, page_out
from modelcycle.deploy import Deployment, DeploymentConfig, DeploymentRevision, DeploymentSpec
from modelcycle.types import MAX_INT32, NAME_PATTERN

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])

DeploymentName = Annotated[str, Path(pattern=NAME_PATTERN, description="Deployment name.")]
RevisionQuery = Annotated[int | None, Query(ge=1, le=MAX_INT32)]


@router.post("", response_model=Deployment, status_code=status.HTTP_201_CREATED)
def create_deployment(
    body: DeploymentSpec, principal: PrincipalDep, services: ServicesDep
) -> Deployment:
    """Create a deployment; every target must name an active version or an alias."""
    return services.deployments.create(principal, body)


@router.get("", response_model=PageOut[Deployment])
def list_deployments(
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> PageOut[Deployment]:
    """Deployments of the caller's project, oldest first."""
    return page_out(services.deployments.list(principal, cursor=cursor, limit=limit))


@router.get("/{name}", response_model=Deployment)
def get_deployment(
    name: DeploymentName, principal: PrincipalDep, services: ServicesDep
) -> Deployment:
    """One deployment and the configuration in force."""
    return services.deployments.get(principal, name)


@router.put("/{name}", response_model=Deployment)
def update_deployment(
    name: DeploymentName,
    body: DeploymentConfig,
    principal: PrincipalDep,
    services: ServicesDep,
    expected_revision: RevisionQuery = None,
) -> Deployment:
    """Replace the configuration (a new revision); 409 if ``expected_revision`` is stale."""
    return services.deployments.update(principal, name, body, expected_revision=expected_revision)


@router.post("/{name}/promote", response_model=Deployment)
def promote_deployment(
    name: DeploymentName, principal: PrincipalDep, services: ServicesDep
) -> Deployment:
    """The canary becomes the single route with 100% of the traffic."""
    return services.deployments.promote(principal, name)


@router.post("/{name}/rollback", response_model=Deployment)
def rollback_deployment(
    name: DeploymentName,
    principal: PrincipalDep,
    services: ServicesDep,
    to_revision: RevisionQuery = None,
) -> Deployment:
    """Restore the previous configuration (or ``to_revision``) as a new revision."""
    return services.deployments.rollback(principal, name, to_revision=to_revision)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_deployment(
    name: DeploymentName, principal: PrincipalDep, services: ServicesDep
) -> Response:
    """Delete a deployment; clients calling it get 404 ``model_not_found``."""
    services.deployments.delete(principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/revisions", response_model=list[DeploymentRevision])
def deployment_revisions(
    name: DeploymentName, principal: PrincipalDep, services: ServicesDep
) -> list[DeploymentRevision]:
    """Every configuration the deployment has had, oldest first."""
    return services.deployments.revisions(principal, name)
