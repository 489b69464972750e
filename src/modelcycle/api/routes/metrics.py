"""``GET /metrics``: Prometheus (or OpenMetrics) text of this server process.

Unauthenticated by default, like ``/healthz``: Prometheus scrapers rarely carry
credentials, and the series hold counts, durations and deployment names, never
inputs, outputs, users or keys. Where deployment names are themselves
sensitive, ``metrics_require_key`` asks for a ``viewer`` key (or higher) as a
Bearer token — Prometheus' ``authorization`` scrape option sends it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelcycle.access import require
from modelcycle.api.deps import ServicesDep, get_principal
from modelcycle.api.errors import ERROR_RESPONSES
from modelcycle.types import Role

router = APIRouter(tags=["metrics"])

_bearer = HTTPBearer(
    auto_error=False,
    description="A viewer key, needed only when the server sets metrics_require_key.",
)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition (OpenMetrics when the scraper asks).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        401: ERROR_RESPONSES[401],
        403: ERROR_RESPONSES[403],
    },
)
def metrics(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    """Request, token and latency metrics, trace recorder counters, process and GPU readings."""
    if services.settings.metrics_require_key:
        require(get_principal(request, services, credentials), Role.VIEWER)
    body, content_type = services.metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)
