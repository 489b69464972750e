"""Safety evaluations: the built-in red-team suite and the counterfactual bias probes.

``POST /api/v1/evals/redteam`` and ``/bias`` start a run of the built-in set
against a target (written into the project as a dataset version first); the
reports of a finished run are ``GET /api/v1/evals/{run_id}/redteam`` (pass rate
per category) and ``/bias`` (group comparisons). The run itself is followed,
listed and cancelled through ``/api/v1/evals`` like any other.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import Field

from modelcycle.api.deps import PrincipalDep, ServicesDep
from modelcycle.evaluate.bias import BiasReport, bias_report_for_run, start_bias
from modelcycle.evaluate.redteam import RedteamReport, redteam_report_for_run, start_redteam
from modelcycle.evaluate.schemas import EvalRun
from modelcycle.types import MAX_INT32, RequestBody

router = APIRouter(prefix="/api/v1/evals", tags=["evaluation"])

RunId = Annotated[int, Path(ge=1, le=MAX_INT32, description="Evaluation run id.")]
TargetQuery = Annotated[
    str | None,
    Query(max_length=200, description="One of the run's targets (default: its first)."),
]


class SafetyRunCreate(RequestBody):
    """What to probe: a deployment, or a version as NAME@VERSION / NAME@alias."""

    target: str = Field(min_length=1, max_length=200)
    concurrency: int = Field(default=4, ge=1, le=64)


@router.post("/redteam", response_model=EvalRun, status_code=status.HTTP_201_CREATED)
def start_redteam_run(
    body: SafetyRunCreate, principal: PrincipalDep, services: ServicesDep
) -> EvalRun:
    """Run the built-in red-team suite against ``target`` (maintainers); a run of kind redteam."""
    return start_redteam(
        services.evals, services.store, principal, body.target, concurrency=body.concurrency
    )


@router.post("/bias", response_model=EvalRun, status_code=status.HTTP_201_CREATED)
def start_bias_run(
    body: SafetyRunCreate, principal: PrincipalDep, services: ServicesDep
) -> EvalRun:
    """Run the built-in bias probes against ``target`` (maintainers); a run of kind bias."""
    return start_bias(
        services.evals, services.store, principal, body.target, concurrency=body.concurrency
    )


@router.get("/{run_id:int}/bias", response_model=BiasReport)
def bias_report(
    run_id: RunId, principal: PrincipalDep, services: ServicesDep, target: TargetQuery = None
) -> BiasReport:
    """Group comparisons of a finished bias run, Holm-corrected; 409 while it runs."""
    return bias_report_for_run(services.store, services.scorers, principal, run_id, target=target)


@router.get("/{run_id:int}/redteam", response_model=RedteamReport)
def redteam_report(
    run_id: RunId, principal: PrincipalDep, services: ServicesDep, target: TargetQuery = None
) -> RedteamReport:
    """Pass rate per category of a red-team run, a guard's block counting as a pass."""
    return redteam_report_for_run(services.store, principal, run_id, target=target)
