"""Traces: search, one trace in full, feedback, rollups and the monitoring policy.

Reads need ``viewer``; feedback may be sent by ``app`` keys too (applications
relay their users' thumbs and corrections); the policy is changed by admins.
Unknown query parameters are refused (400), so a misspelt filter never
silently widens a search.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from modelcycle.api.deps import PrincipalDep, ServicesDep
from modelcycle.errors import NotFound
from modelcycle.monitor.trace_schemas import (
    TRACE_ID_PATTERN,
    Feedback,
    FeedbackCreate,
    MonitorPolicy,
    MonitorPolicyUpdate,
    RollupQuery,
    Rollups,
    Trace,
    TraceFilter,
    TracePage,
)

router = APIRouter(prefix="/api/v1", tags=["traces"])

TraceId = Annotated[
    str, Path(pattern=TRACE_ID_PATTERN, description="Trace id (32 hex digits, usually).")
]


@router.get("/traces", response_model=TracePage)
def search_traces(
    principal: PrincipalDep, services: ServicesDep, query: Annotated[TraceFilter, Query()]
) -> TracePage:
    """Traces of the caller's project, newest first (the last 24 hours by default).

    A trace is listed once when any of its spans matches every filter.
    """
    return services.traces.search(principal, query)


@router.get("/traces/{trace_id}", response_model=Trace)
def get_trace(trace_id: TraceId, principal: PrincipalDep, services: ServicesDep) -> Trace:
    """Every span of a trace in tree order, and its feedback."""
    return services.traces.get(principal, trace_id)


@router.post(
    "/traces/{trace_id}/feedback", response_model=Feedback, status_code=status.HTTP_201_CREATED
)
def add_feedback(
    trace_id: TraceId, body: FeedbackCreate, principal: PrincipalDep, services: ServicesDep
) -> Feedback:
    """Attach feedback to a trace; it is linked to the model version that answered.

    Feedback often follows its answer within milliseconds, before the trace is
    written: an unknown trace is looked up again once this process's queued
    traces are written.
    """
    try:
        return services.feedback.add(principal, trace_id, body)
    except NotFound:
        services.recorder.flush(timeout_s=5.0)
        return services.feedback.add(principal, trace_id, body)


@router.get("/traces/{trace_id}/feedback", response_model=list[Feedback])
def list_feedback(
    trace_id: TraceId, principal: PrincipalDep, services: ServicesDep
) -> list[Feedback]:
    """Feedback of a trace, oldest first."""
    return services.feedback.list(principal, trace_id)


@router.get("/rollups", response_model=Rollups)
def get_rollups(
    principal: PrincipalDep, services: ServicesDep, query: Annotated[RollupQuery, Query()]
) -> Rollups:
    """Requests, errors, latency and TTFT percentiles, tokens, cost and feedback over time."""
    return services.traces.rollups(principal, query)


@router.get("/monitor/policy", response_model=MonitorPolicy)
def get_monitor_policy(principal: PrincipalDep, services: ServicesDep) -> MonitorPolicy:
    """The project's monitoring policy (trace retention)."""
    return services.monitor_policies.get(principal)


@router.put("/monitor/policy", response_model=MonitorPolicy)
def set_monitor_policy(
    body: MonitorPolicyUpdate, principal: PrincipalDep, services: ServicesDep
) -> MonitorPolicy:
    """Replace the project's monitoring policy (admins)."""
    return services.monitor_policies.set(principal, body)
