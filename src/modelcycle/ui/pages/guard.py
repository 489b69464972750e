"""Guardrails: the project's policies, which deployment runs which, recent findings, a try-it form.

Findings come from the guard decisions recorded on traces: a trace search per
outcome (``flag``, ``redact``, ``block``), newest first and limited, then one
read of the listed traces' recorded findings. Counting every finding of a
range would scan every span in it, so the chart counts the findings of the
requests listed, and says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from modelcycle.deploy.schemas import Deployment
from modelcycle.errors import InvalidInput
from modelcycle.guard.schemas import GuardCheckRequest, GuardCheckResponse, GuardPolicy
from modelcycle.monitor.trace_schemas import GuardOutcome, TraceFilter, TraceSummary
from modelcycle.types import NAME_PATTERN
from modelcycle.ui.auth import FormChecked, Viewer, ViewerDep
from modelcycle.ui.charts import Bar, bar_chart
from modelcycle.ui.render import renderer
from modelcycle.ui.routing import UiRoute
from modelcycle.ui.timerange import window

router = APIRouter(route_class=UiRoute)

LATEST = 25
"""Guarded requests listed per page (and whose findings the chart counts)."""
HITS = (GuardOutcome.BLOCK, GuardOutcome.REDACT, GuardOutcome.FLAG)
"""The outcomes that mean the guard found something."""
CHECK_MAX_CHARS = 100_000
"""Longest text the try-it form takes (the API takes more)."""
DEPLOYMENT_PREFIX, POLICY_PREFIX = "deployment:", "policy:"

NameQuery = Annotated[str | None, Query(max_length=64, pattern=NAME_PATTERN)]
CursorParam = Annotated[str | None, Query(max_length=200)]


@dataclass(frozen=True, slots=True)
class PolicyView:
    """A policy and the deployments that run it."""

    policy: GuardPolicy
    used_by: list[str]


@dataclass(frozen=True, slots=True)
class FindingView:
    """One finding recorded on a span (where it was, never the text found)."""

    detector: str
    type: str
    stage: str
    action: str
    score: float


@dataclass(frozen=True, slots=True)
class GuardedRequest:
    """A guarded trace of the findings table."""

    summary: TraceSummary
    findings: list[FindingView]


def _finding(raw: Any) -> FindingView | None:
    if not isinstance(raw, dict):
        return None
    return FindingView(
        detector=str(raw.get("detector", "?")),
        type=str(raw.get("type", "?")),
        stage=str(raw.get("stage", "")),
        action=str(raw.get("action", "")),
        score=float(raw.get("score") or 0.0),
    )


def _outcome(value: str | None) -> GuardOutcome | None:
    if not value:
        return None
    if value not in {str(hit) for hit in HITS}:
        raise InvalidInput(
            "outcome must be flag, redact or block (or empty for all)", param="outcome"
        )
    return GuardOutcome(value)


def _latest_guarded(
    viewer: Viewer,
    filters: dict[str, Any],
    outcome: GuardOutcome | None,
    cursor: str | None,
) -> tuple[list[TraceSummary], str | None]:
    """The newest guarded traces: one outcome page by page, or the newest of all three."""
    search = viewer.services.traces.search
    if outcome is not None:
        page = search(
            viewer.principal, TraceFilter(**filters, guard=outcome, cursor=cursor, limit=LATEST)
        )
        return page.data, page.next_cursor
    if cursor is not None:
        raise InvalidInput("pages after the first need an outcome filter", param="cursor")
    merged: dict[str, TraceSummary] = {}
    for hit in HITS:
        for summary in search(
            viewer.principal, TraceFilter(**filters, guard=hit, limit=LATEST)
        ).data:
            merged.setdefault(summary.trace_id, summary)
    newest = sorted(merged.values(), key=lambda s: s.start_time, reverse=True)
    return newest[:LATEST], None


def _policies(viewer: Viewer, deployments: Sequence[Deployment]) -> list[PolicyView]:
    users: dict[str, list[str]] = {}
    for deployment in deployments:
        if deployment.spec.guard is not None:
            users.setdefault(deployment.spec.guard, []).append(deployment.name)
    policies = viewer.services.guard.list(viewer.principal, limit=100).items
    return [PolicyView(policy, sorted(users.get(policy.name, []))) for policy in policies]


def _form_context(viewer: Viewer) -> dict[str, Any]:
    """What the try-it form offers: deployments and policies to check a text against."""
    deployments = viewer.services.deployments.list(viewer.principal, limit=500).items
    return {
        "deployments": deployments,
        "policies": _policies(viewer, deployments),
        "max_chars": CHECK_MAX_CHARS,
    }


@router.get("/guard")
def guard_page(
    request: Request,
    viewer: ViewerDep,
    range: str | None = None,
    outcome: Annotated[str | None, Query(max_length=16)] = None,
    deployment: NameQuery = None,
    cursor: CursorParam = None,
) -> Response:
    """Policies, which deployment uses which, and the latest guard findings over a range."""
    chosen, wanted = window(range), _outcome(outcome)
    filters: dict[str, Any] = {"start": chosen.start, "end": chosen.end}
    if deployment:
        filters["deployment"] = deployment
    listed, next_cursor = _latest_guarded(viewer, filters, wanted, cursor or None)
    recorded = viewer.services.traces.guard_findings(viewer.principal, [s.trace_id for s in listed])
    requests = [
        GuardedRequest(s, [f for f in map(_finding, recorded[s.trace_id]) if f is not None])
        for s in listed
    ]
    by_detector = Counter(f.detector for r in requests for f in r.findings)
    chart = bar_chart(
        [Bar(name, count) for name, count in by_detector.most_common(12)],
        title=f"Findings per detector in the latest {len(requests)} guarded "
        + ("request" if len(requests) == 1 else "requests"),
    )
    context = _form_context(viewer)
    params = {"range": chosen.key, "outcome": wanted or "", "deployment": deployment or ""}
    context.update(
        title="Guardrails",
        range=chosen.key,
        outcome=wanted or "",
        deployment=deployment or "",
        requests=requests,
        outcomes=[str(hit) for hit in HITS],
        chart=chart,
        unused=[d.name for d in context["deployments"] if d.spec.guard is None],
        detectors=viewer.services.guard.detector_catalog(viewer.principal),
        next_cursor=next_cursor,
        page_params=urlencode({k: v for k, v in params.items() if v}),
        latest=LATEST,
    )
    return renderer(request).page(request, "guard.html", context)


def _check_request(text: str, stage: str, using: str) -> GuardCheckRequest:
    """The API's check request for the form's fields (``using``: ``deployment:X``, ``policy:X``)."""
    body: dict[str, Any] = {"text": text, "stage": stage}
    if using.startswith(DEPLOYMENT_PREFIX):
        body["deployment"] = using.removeprefix(DEPLOYMENT_PREFIX)
    elif using.startswith(POLICY_PREFIX):
        body["policy"] = using.removeprefix(POLICY_PREFIX)
    elif using:
        raise InvalidInput("choose a deployment, a policy or the project's default", param="using")
    try:
        return GuardCheckRequest.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


@router.post("/guard/check", dependencies=[FormChecked])
def guard_check(
    request: Request,
    viewer: ViewerDep,
    text: Annotated[str, Form(max_length=CHECK_MAX_CHARS)],
    stage: Annotated[str, Form(max_length=16)] = "input",
    using: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """What a policy makes of a text: action, findings and the redacted text (nothing stored)."""
    result: GuardCheckResponse = viewer.services.guard.check(
        viewer.principal, _check_request(text, stage, using)
    )
    context = _form_context(viewer)
    context.update(
        title="Guard check",
        result=result,
        text=text,
        stage=stage,
        using=using,
    )
    return renderer(request).page(request, "guard_check.html", context)
