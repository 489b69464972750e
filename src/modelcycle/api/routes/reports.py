"""Compliance records: the model card and deployment record of one model version."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from modelcycle.api.deps import PrincipalDep, ServicesDep
from modelcycle.reports import DEFAULT_DAYS, MAX_DAYS, ModelReport, ReportFormat
from modelcycle.types import NAME_PATTERN

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

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
