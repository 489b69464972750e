"""Evaluation runs: start one, follow it, read its per-sample results, cancel, check gates.

``run_id`` is matched as ``{run_id:int}`` (digits only), so the routes of
``/api/v1/evals/online/...`` and any other word-named sub-path never reach
these handlers, whichever router the app includes first.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, Field

from modelcycle.api.deps import CursorQuery, PrincipalDep, ServicesDep
from modelcycle.api.pages import PageOut, page_out
from modelcycle.evaluate.schemas import (
    MAX_GATES,
    EvalResult,
    EvalRun,
    EvalRunCreate,
    GateVerdict,
    RunKind,
    RunStatus,
)
from modelcycle.types import MAX_INT32, RequestBody

router = APIRouter(prefix="/api/v1/evals", tags=["evaluation"])

RUN = "/{run_id:int}"
"""The run's path segment: digits only, so ``online`` and other words fall through."""

RunId = Annotated[int, Path(ge=1, le=MAX_INT32, description="Evaluation run id.")]
RunsLimit = Annotated[int, Query(ge=1, le=500, description="Page size.")]


class GateCheck(RequestBody):
    """Gates to evaluate against a finished run (``POST /api/v1/evals/{run_id}/gates``)."""

    gates: list[str] = Field(
        min_length=1,
        max_length=MAX_GATES,
        description="Gate expressions, e.g. 'exact_match>=0.8' or "
        "'delta(rouge_l, baseline=NAME@production)>=0 p<0.05'.",
    )


class GateReport(BaseModel):
    """Each gate's verdict on each candidate, and whether every one held."""

    gates: list[GateVerdict]
    passed: bool


@router.post("", response_model=EvalRun, status_code=status.HTTP_201_CREATED)
def create_run(body: EvalRunCreate, principal: PrincipalDep, services: ServicesDep) -> EvalRun:
    """Start an evaluation of ``targets`` on a dataset version (maintainers).

    The run is queued as a background job (``eval.run``) that a worker executes;
    follow it with ``GET /api/v1/evals/{run_id}``. A 400 names an unknown scorer,
    bad scorer options or a gate that does not parse; a 404 an unknown dataset.
    """
    return services.evals.create(principal, body)


@router.get("", response_model=PageOut[EvalRun])
def list_runs(
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: RunsLimit = 50,
    kind: Annotated[RunKind | None, Query(description="Only runs of this kind.")] = None,
    run_status: Annotated[
        RunStatus | None, Query(alias="status", description="Only runs in this state.")
    ] = None,
) -> PageOut[EvalRun]:
    """The project's runs, newest first."""
    return page_out(
        services.evals.list(principal, limit=limit, cursor=cursor, kind=kind, status=run_status)
    )


@router.get(RUN, response_model=EvalRun)
def get_run(run_id: RunId, principal: PrincipalDep, services: ServicesDep) -> EvalRun:
    """One run: its state, progress and, once finished, its summary and gate verdicts."""
    return services.evals.get(principal, run_id)


@router.get(RUN + "/results", response_model=PageOut[EvalResult])
def list_results(
    run_id: RunId,
    principal: PrincipalDep,
    services: ServicesDep,
    target: Annotated[
        str | None, Query(max_length=200, description="Only this target's answers.")
    ] = None,
    cursor: CursorQuery = None,
    limit: RunsLimit = 100,
) -> PageOut[EvalResult]:
    """Each target's answer to each sample, with its scores and trace id, in sample order."""
    return page_out(
        services.evals.results(principal, run_id, target=target, limit=limit, cursor=cursor)
    )


@router.post(RUN + "/cancel", response_model=EvalRun)
def cancel_run(run_id: RunId, principal: PrincipalDep, services: ServicesDep) -> EvalRun:
    """Cancel a queued or running run (maintainers); a finished run is a 409."""
    return services.evals.cancel(principal, run_id)


@router.post(RUN + "/gates", response_model=GateReport)
def check_gates(
    run_id: RunId, body: GateCheck, principal: PrincipalDep, services: ServicesDep
) -> GateReport:
    """Evaluate gates against a finished run's scores without changing it.

    Any key that can read the run may ask; ``passed`` is false when any gate fails.
    """
    verdicts = services.evals.check_gates(principal, run_id, body.gates)
    return GateReport(gates=verdicts, passed=all(v.passed for v in verdicts))
