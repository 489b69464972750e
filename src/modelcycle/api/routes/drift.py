"""Drift: run a check now, read reports, schedule recurring checks for the worker."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from modelcycle.api.deps import CursorQuery, LimitQuery, PrincipalDep, ServicesDep
from modelcycle.api.pages import PageOut, page_out
from modelcycle.monitor.drift_schemas import (
    DriftCheck,
    DriftReport,
    DriftSchedule,
    DriftScheduleCreate,
)
from modelcycle.types import MAX_INT32, NAME_PATTERN

router = APIRouter(prefix="/api/v1/drift", tags=["drift"])

ScheduleName = Annotated[str, Path(pattern=NAME_PATTERN, description="Schedule name.")]


@router.post("/checks", response_model=DriftReport, status_code=status.HTTP_201_CREATED)
def run_check(body: DriftCheck, principal: PrincipalDep, services: ServicesDep) -> DriftReport:
    """Compare a window of production with a reference now, and store the report.

    Runs in the request on at most ``max_samples`` rows per side; the first
    embedding metric of a process loads the embedding model (seconds).
    """
    return services.drift.check(principal, body)


@router.get("/reports", response_model=PageOut[DriftReport])
def list_reports(
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
    deployment: Annotated[str | None, Query(max_length=64)] = None,
    drifted: Annotated[
        bool | None, Query(description="Only reports that drifted (or not).")
    ] = None,
) -> PageOut[DriftReport]:
    """Drift reports of the caller's project, newest first."""
    return page_out(
        services.drift.reports(
            principal, deployment=deployment, drifted=drifted, cursor=cursor, limit=limit
        )
    )


@router.get("/reports/{report_id}", response_model=DriftReport)
def get_report(
    report_id: Annotated[int, Path(ge=1, le=MAX_INT32)],
    principal: PrincipalDep,
    services: ServicesDep,
) -> DriftReport:
    """One report with every metric's statistics and evidence."""
    return services.drift.report(principal, report_id)


@router.post("/schedules", response_model=DriftSchedule, status_code=status.HTTP_201_CREATED)
def set_schedule(
    body: DriftScheduleCreate, principal: PrincipalDep, services: ServicesDep
) -> DriftSchedule:
    """Create or replace a recurring check; the background worker runs it every ``interval_s``."""
    return services.drift.schedule(principal, body)


@router.get("/schedules", response_model=list[DriftSchedule])
def list_schedules(principal: PrincipalDep, services: ServicesDep) -> list[DriftSchedule]:
    """Recurring checks of the caller's project."""
    return services.drift.schedules(principal)


@router.delete("/schedules/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_schedule(name: ScheduleName, principal: PrincipalDep, services: ServicesDep) -> Response:
    """Stop a recurring check (reports it made stay)."""
    services.drift.unschedule(principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
