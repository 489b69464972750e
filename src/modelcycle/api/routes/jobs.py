"""Background jobs: list, read, follow their events, cancel.

A project sees its own jobs; the operators' (root) project also sees the
platform's jobs (retention, alert evaluation). Another project's job is a 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from modelcycle.access import Principal, require
from modelcycle.api.deps import CursorQuery, LimitQuery, PrincipalDep, ServicesDep
from modelcycle.api.pages import PageOut, page_out
from modelcycle.errors import NotFound
from modelcycle.jobs import JobEventView, JobState, JobView
from modelcycle.services import Services
from modelcycle.store import Page, decode_cursor, encode_cursor
from modelcycle.types import MAX_INT32, ROOT_PROJECT, Role

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

JobId = Annotated[int, Path(ge=1, le=MAX_INT32, description="Job id.")]


def _sees_platform(principal: Principal) -> bool:
    return principal.project == ROOT_PROJECT


def visible_job(services: Services, principal: Principal, job_id: int) -> JobView:
    """The job if the caller's project may see it; 404 otherwise (as if it did not exist)."""
    require(principal, Role.VIEWER)
    try:
        job = services.jobs.get(job_id)
    except NotFound:
        job = None
    if job is None or not (
        job.project_id == principal.project_id
        or (job.project_id is None and _sees_platform(principal))
    ):
        raise NotFound(f"job {job_id} not found")
    return job


@router.get("", response_model=PageOut[JobView])
def list_jobs(
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
    kind: Annotated[str | None, Query(max_length=64, description="e.g. drift.check")] = None,
    state: JobState | None = None,
) -> PageOut[JobView]:
    """Jobs of the caller's project, newest first."""
    require(principal, Role.VIEWER)
    return page_out(
        services.jobs.list(
            project_id=principal.project_id,
            kind=kind,
            state=state,
            cursor=cursor,
            limit=limit,
            include_platform=_sees_platform(principal),
        )
    )


@router.get("/{job_id}", response_model=JobView)
def get_job(job_id: JobId, principal: PrincipalDep, services: ServicesDep) -> JobView:
    """One job: state, progress, attempts, result or error, checkpoint."""
    return visible_job(services, principal, job_id)


@router.get("/{job_id}/events", response_model=PageOut[JobEventView])
def job_events(
    job_id: JobId,
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> PageOut[JobEventView]:
    """A job's log lines and metric points, oldest first (follow with ``next_cursor``)."""
    visible_job(services, principal, job_id)
    items = services.jobs.events(job_id, after_id=decode_cursor(cursor), limit=limit)
    more = len(items) == limit
    return page_out(Page(items, encode_cursor(items[-1].id) if more else None))


@router.post("/{job_id}/cancel", response_model=JobView)
def cancel_job(job_id: JobId, principal: PrincipalDep, services: ServicesDep) -> JobView:
    """Cancel a job (maintainers): a waiting one at once, a running one at its next check."""
    require(principal, Role.MAINTAINER)
    visible_job(services, principal, job_id)
    return services.jobs.cancel(job_id, actor=principal.actor)
