"""Overview: every deployment's health over a range, firing alerts, recent changes."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from modelcycle.deploy.schemas import Deployment
from modelcycle.monitor.trace_schemas import GroupBy, RollupQuery, RollupStats
from modelcycle.ui.auth import ViewerDep
from modelcycle.ui.charts import Series, line_chart
from modelcycle.ui.render import renderer
from modelcycle.ui.routing import UiRoute
from modelcycle.ui.timerange import window

router = APIRouter(route_class=UiRoute)


@dataclass(frozen=True, slots=True)
class DeploymentHealth:
    """One row of the overview table."""

    deployment: Deployment
    stats: RollupStats | None
    requests_per_s: float | None
    health: str
    """``idle`` (no traffic), ``ok``, ``degraded`` (errors >= 1%) or ``failing`` (>= 20%)."""


def health_of(stats: RollupStats | None) -> str:
    """A one-word state for the table; thresholds chosen to match common SLOs."""
    if stats is None or stats.requests == 0:
        return "idle"
    rate = stats.error_rate or 0.0
    if rate >= 0.2:
        return "failing"
    return "degraded" if rate >= 0.01 else "ok"


@router.get("/")
def overview(request: Request, viewer: ViewerDep, range: str | None = None) -> Response:
    """The landing page."""
    services, principal = viewer.services, viewer.principal
    chosen = window(range)
    deployments = services.deployments.list(principal, limit=500).items
    rollups = services.traces.rollups(
        principal,
        RollupQuery(start=chosen.start, end=chosen.end, group_by=GroupBy.DEPLOYMENT),
    )
    by_name = {series.deployment: series for series in rollups.series}
    rows = []
    for deployment in deployments:
        series = by_name.get(deployment.name)
        stats = series.summary if series is not None else None
        rate = stats.requests / chosen.seconds if stats is not None else None
        rows.append(DeploymentHealth(deployment, stats, rate, health_of(stats)))
    busiest = sorted(rollups.series, key=lambda s: -s.summary.requests)[:6]
    step = max(rollups.step_s, 1)
    traffic = line_chart(
        [
            Series(
                s.deployment or "?",
                s.points.time,
                [count / step for count in s.points.requests],
            )
            for s in busiest
        ],
        title="Requests per second by deployment",
        unit="/s",
    )
    latency = line_chart(
        [Series(s.deployment or "?", s.points.time, s.points.latency_p95_ms) for s in busiest],
        title="Latency p95 by deployment",
        unit=" ms",
    )
    firing = services.alerts.list(principal, state="firing", limit=50).items
    changes = []
    for deployment in deployments[:20]:
        for revision in services.deployments.revisions(principal, deployment.name)[-3:]:
            changes.append((deployment.name, revision))
    changes.sort(key=lambda item: item[1].at, reverse=True)
    return renderer(request).page(
        request,
        "overview.html",
        {
            "title": "Overview",
            "range": chosen.key,
            "rows": rows,
            "traffic_chart": traffic,
            "latency_chart": latency,
            "firing": firing,
            "changes": changes[:10],
        },
    )
