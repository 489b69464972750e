"""Online evaluation: which share of a deployment's traces is scored, by which scorers.

Viewers read configurations and scores; maintainers set and delete them. The
literal ``online`` segment never reaches the run routes of ``evals.py`` (they
match ``{run_id:int}``), whichever router is included first.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from modelcycle.api.deps import PrincipalDep, ServicesDep
from modelcycle.evaluate.online_schemas import (
    OnlineEvalConfig,
    OnlineEvalSet,
    OnlineScoreQuery,
    OnlineScores,
)
from modelcycle.types import NAME_PATTERN

router = APIRouter(prefix="/api/v1/evals/online", tags=["evaluation"])

DeploymentName = Annotated[
    str, Path(pattern=NAME_PATTERN, max_length=64, description="Deployment name.")
]


@router.get("", response_model=list[OnlineEvalConfig])
def list_configs(principal: PrincipalDep, services: ServicesDep) -> list[OnlineEvalConfig]:
    """Online evaluation configurations of the caller's project, by deployment."""
    return services.online_eval.list(principal)


@router.get("/{deployment}", response_model=OnlineEvalConfig)
def get_config(
    deployment: DeploymentName, principal: PrincipalDep, services: ServicesDep
) -> OnlineEvalConfig:
    """One deployment's configuration and how far it has scored."""
    return services.online_eval.get(principal, deployment)


@router.put("/{deployment}", response_model=OnlineEvalConfig)
def set_config(
    deployment: DeploymentName,
    body: OnlineEvalSet,
    principal: PrincipalDep,
    services: ServicesDep,
) -> OnlineEvalConfig:
    """Create or replace a deployment's online evaluation (maintainers).

    400 naming a scorer that is unknown, has a bad option or needs a reference
    answer; 404 when the project has no such deployment.
    """
    return services.online_eval.set(principal, deployment, body)


@router.delete("/{deployment}", status_code=status.HTTP_204_NO_CONTENT)
def delete_config(
    deployment: DeploymentName, principal: PrincipalDep, services: ServicesDep
) -> Response:
    """Stop scoring a deployment (maintainers); the scores already made stay."""
    services.online_eval.delete(principal, deployment)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{deployment}/scores", response_model=OnlineScores)
def get_scores(
    deployment: DeploymentName,
    principal: PrincipalDep,
    services: ServicesDep,
    query: Annotated[OnlineScoreQuery, Query()],
) -> OnlineScores:
    """Count, errors and mean of each scorer per model version and time bucket."""
    return services.online_eval.scores(principal, deployment, query)
