"""Tuning jobs: create (data checked first), list, read, cancel, follow events, checkpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from modelcycle.api.deps import CursorQuery, LimitQuery, PrincipalDep, ServicesDep
from modelcycle.api.pages import PageOut, page_out
from modelcycle.jobs import JobEventView
from modelcycle.store import Page, decode_cursor, encode_cursor
from modelcycle.tune.schemas import TuneCheckpoint, TuneJob, TuneJobCreate

router = APIRouter(prefix="/api/v1/tune/jobs", tags=["tune"])

TuneJobId = Annotated[
    str, Path(pattern=r"^ftjob-[0-9a-f]{24}$", description="Tuning job id (ftjob-...).")
]


@router.post("", response_model=TuneJob, status_code=status.HTTP_201_CREATED)
def create_tune_job(body: TuneJobCreate, principal: PrincipalDep, services: ServicesDep) -> TuneJob:
    """Start a tuning job (maintainers); 400 naming the first bad sample, and nothing queued."""
    return services.tune.create(principal, body)


@router.get("", response_model=PageOut[TuneJob])
def list_tune_jobs(
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 20,
) -> PageOut[TuneJob]:
    """Tuning jobs of the caller's project, newest first."""
    return page_out(services.tune.list(principal, cursor=cursor, limit=limit))


@router.get("/{tune_job_id}", response_model=TuneJob)
def get_tune_job(tune_job_id: TuneJobId, principal: PrincipalDep, services: ServicesDep) -> TuneJob:
    """One job: status, progress, metrics, the registered version, the comparison run."""
    return services.tune.get(principal, tune_job_id)


@router.post("/{tune_job_id}/cancel", response_model=TuneJob)
def cancel_tune_job(
    tune_job_id: TuneJobId, principal: PrincipalDep, services: ServicesDep
) -> TuneJob:
    """Cancel a job (maintainers): a queued one at once, a running one at its next step."""
    return services.tune.cancel(principal, tune_job_id)


@router.get("/{tune_job_id}/events", response_model=PageOut[JobEventView])
def tune_job_events(
    tune_job_id: TuneJobId,
    principal: PrincipalDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> PageOut[JobEventView]:
    """Log lines and metric points (loss, learning rate, tokens/s), oldest first."""
    after = decode_cursor(cursor)
    items = services.tune.events(principal, tune_job_id, after_id=after, limit=limit)
    more = len(items) == limit
    return page_out(Page(items, encode_cursor(items[-1].id) if more else None))


@router.get("/{tune_job_id}/checkpoints", response_model=list[TuneCheckpoint])
def tune_job_checkpoints(
    tune_job_id: TuneJobId, principal: PrincipalDep, services: ServicesDep
) -> list[TuneCheckpoint]:
    """The checkpoints the job saved, newest first."""
    return services.tune.checkpoints(principal, tune_job_id)
