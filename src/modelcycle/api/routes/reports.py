"""Reports: a model version's card and deployment record, and an evaluation run's report."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from modelcycle.access import Principal
from modelcycle.api.deps import PrincipalDep, ServicesDep
from modelcycle.evaluate.schemas import EvalResult
from modelcycle.reports import (
    DEFAULT_DAYS,
    MAX_DAYS,
    EvalReport,
    ModelReport,
    ReportFormat,
    build_eval_report,
    render_eval_report_html,
)
from modelcycle.services import Services
from modelcycle.store.pagination import MAX_LIMIT
from modelcycle.types import MAX_INT32, NAME_PATTERN

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
eval_router = APIRouter(prefix="/api/v1/evals", tags=["reports"])
"""The report of an evaluation run lives under its run: ``/api/v1/evals/{run_id}/report``."""

MEDIA_TYPES: dict[ReportFormat, str] = {
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
}
_TEXT = {"schema": {"type": "string"}}


@router.get(
    "/models/{name}/versions/{ref}",
    response_class=Response,
    responses={
        200: {
            "description": "The report in the format asked for.",
            "model": ModelReport,
            "content": {"text/markdown": _TEXT, "text/html": _TEXT},
        }
    },
)
def model_report(
    name: Annotated[str, Path(pattern=NAME_PATTERN, description="Model name.")],
    ref: Annotated[
        str, Path(pattern=NAME_PATTERN, description="Version number (e.g. 3) or alias.")
    ],
    principal: PrincipalDep,
    services: ServicesDep,
    format: Annotated[
        ReportFormat, Query(description="md (Markdown), html (a standalone page) or json.")
    ] = "md",
    days: Annotated[
        int, Query(ge=1, le=MAX_DAYS, description="Activity window, in days before now.")
    ] = DEFAULT_DAYS,
) -> Response:
    """The model card and deployment record of one version.

    Identity, intended use, lineage, evaluations, deployments and guard policies,
    monitoring, incidents, audit trail and the EU AI Act / OWASP LLM compliance map.
    """
    report = services.reports.gather(principal, name, ref, days=days)
    headers = {"X-Content-Type-Options": "nosniff"}
    if format == "html":
        headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return Response(
        services.reports.render(report, format), media_type=MEDIA_TYPES[format], headers=headers
    )


def _all_results(services: Services, principal: Principal, run_id: int) -> list[EvalResult]:
    """Every result of the run, page by page (the statistics need all of them)."""
    found: list[EvalResult] = []
    cursor: str | None = None
    while True:
        page = services.evals.results(principal, run_id, limit=MAX_LIMIT, cursor=cursor)
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found


@eval_router.get(
    "/{run_id:int}/report",
    response_class=Response,
    responses={
        200: {
            "description": "The report: a standalone HTML page, or JSON.",
            "model": EvalReport,
            "content": {"text/html": _TEXT},
        }
    },
)
def eval_report(
    run_id: Annotated[int, Path(ge=1, le=MAX_INT32, description="Evaluation run id.")],
    principal: PrincipalDep,
    services: ServicesDep,
    format: Annotated[
        Literal["html", "json"], Query(description="html (a standalone page) or json.")
    ] = "html",
    download: Annotated[
        bool, Query(description="Ask the browser to save it as eval-<id>.html / .json.")
    ] = False,
) -> Response:
    """The report of one evaluation run (viewer+).

    Run identity, gates, aggregates with 95% intervals, score distributions,
    paired comparisons with the per-sample differences, red-team categories and
    the first samples side by side, flagged as regressions or improvements.
    """
    run = services.evals.get(principal, run_id)
    report = build_eval_report(run, _all_results(services, principal, run_id))
    headers = {"X-Content-Type-Options": "nosniff"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="eval-{run.id}.{format}"'
    if format == "json":
        return Response(
            report.model_dump_json(indent=2), media_type=MEDIA_TYPES["json"], headers=headers
        )
    headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return Response(
        render_eval_report_html(report), media_type=MEDIA_TYPES["html"], headers=headers
    )
