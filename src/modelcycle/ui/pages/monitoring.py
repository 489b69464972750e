"""Monitoring: time series per deployment or version, drift reports, alert rules and history.

Every number comes from an indexed service query: rollups (never raw traces),
the newest drift reports and one page of alert rules with their latest events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from pydantic import ValidationError

from modelcycle.errors import InvalidInput
from modelcycle.monitor.alert_rules import (
    DRIFT_ANY,
    ROLLUP_METRICS,
    AlertEvent,
    AlertRule,
    AlertRuleCreate,
    format_window,
)
from modelcycle.monitor.drift_schemas import METRICS, DriftReport
from modelcycle.monitor.trace_schemas import GroupBy, RollupPoints, RollupQuery, RollupSeries
from modelcycle.types import MAX_INT32
from modelcycle.ui.auth import FormChecked, Viewer, ViewerDep
from modelcycle.ui.charts import Series, line_chart
from modelcycle.ui.render import renderer
from modelcycle.ui.routing import UiRoute
from modelcycle.ui.timerange import Window, window

router = APIRouter(route_class=UiRoute)

MAX_SERIES = 6
"""Lines per chart: the stylesheet has six series colours; the busiest are drawn."""
DRIFT_PAGE = 10
DRIFT_CHART_REPORTS = 100
"""Reports on the drift chart at most: the newest of the chosen range."""
DRIFT_READ = 25
ALERT_PAGE = 50
EVENTS_PER_RULE = 5
HISTORY_RULES = 10
HISTORY_PAGE = 50
NOTICE_CHARS = 300

WINDOWS: dict[str, int] = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "6h": 21_600,
    "24h": 86_400,
    "7d": 604_800,
}
"""The windows the rule form offers (the API takes any number of seconds in range)."""
OPS = (">", ">=", "<", "<=")
SEVERITIES = ("info", "warning", "critical")
ALERT_METRICS: tuple[str, ...] = (
    *ROLLUP_METRICS,
    DRIFT_ANY,
    *(f"drift.{name}" for name in METRICS),
)
"""Suggested in the form; ``online_score:<scorer>`` and other drift names are typed in."""

Cursor = Annotated[str | None, Query(max_length=200)]
DeploymentName = Annotated[str | None, Query(max_length=64)]
RuleId = Annotated[int, Path(ge=1, le=MAX_INT32)]


def _per_second(points: RollupPoints, step: int) -> list[float | None]:
    return [count / step for count in points.requests]


def _tokens(points: RollupPoints, step: int) -> list[float | None]:
    return [float(i + o) for i, o in zip(points.input_tokens, points.output_tokens, strict=True)]


def _column(name: str) -> Callable[[RollupPoints, int], list[float | None]]:
    def values(points: RollupPoints, step: int) -> list[float | None]:
        return list(getattr(points, name))

    return values


@dataclass(frozen=True, slots=True)
class Metric:
    """One chart of the time series: its title, axis unit and values per bucket."""

    key: str
    title: str
    unit: str
    values: Callable[[RollupPoints, int], list[float | None]]


CHARTS: tuple[Metric, ...] = (
    Metric("requests", "Requests per second", "/s", _per_second),
    Metric("error_rate", "Error rate", "%", _column("error_rate")),
    Metric("latency_p50", "Latency p50", " ms", _column("latency_p50_ms")),
    Metric("latency_p95", "Latency p95", " ms", _column("latency_p95_ms")),
    Metric("latency_p99", "Latency p99", " ms", _column("latency_p99_ms")),
    Metric("ttft_p50", "Time to first token p50", " ms", _column("ttft_p50_ms")),
    Metric("ttft_p95", "Time to first token p95", " ms", _column("ttft_p95_ms")),
    Metric("tokens", "Tokens (input + output) per bucket", "", _tokens),
    Metric("cost", "Cost (USD) per bucket", "", _column("cost")),
    Metric("feedback", "Mean feedback score (0 to 1)", "", _column("feedback_score")),
)


def series_name(series: RollupSeries, group_by: GroupBy) -> str:
    """The legend of one series: a deployment, or a model version of one deployment."""
    if group_by is GroupBy.VERSION:
        return f"{series.model or '?'} v{series.version}"
    return series.deployment or "(none)"


@dataclass(frozen=True, slots=True)
class Chart:
    """A drawn chart and the heading it goes under."""

    key: str
    title: str
    svg: Any


def time_series(
    viewer: Viewer, chosen: Window, deployment: str | None
) -> tuple[list[Chart], list[tuple[str, RollupSeries]], int]:
    """The charts, the busiest series (named, for the table) and the bucket width."""
    group_by = GroupBy.VERSION if deployment else GroupBy.DEPLOYMENT
    rollups = viewer.services.traces.rollups(
        viewer.principal,
        RollupQuery(start=chosen.start, end=chosen.end, group_by=group_by, deployment=deployment),
    )
    busiest = sorted(rollups.series, key=lambda s: -s.summary.requests)[:MAX_SERIES]
    named = [(series_name(s, group_by), s) for s in busiest]
    step = max(rollups.step_s, 1)
    return [chart(metric, named, step) for metric in CHARTS], named, step


def chart(metric: Metric, named: Sequence[tuple[str, RollupSeries]], step: int) -> Chart:
    """One metric's chart; costs below a dollar per bucket are drawn in cents (readable ticks)."""
    lines = [(name, s.points.time, metric.values(s.points, step)) for name, s in named]
    title = metric.title
    if metric.key == "cost":
        top = max((v for _, _, values in lines for v in values if v is not None), default=0.0)
        if top < 1:
            lines = [(n, t, [None if v is None else v * 100 for v in vs]) for n, t, vs in lines]
            title = "Cost (US cents) per bucket"
    svg = line_chart(
        [Series(name, times, values) for name, times, values in lines],
        title=title,
        unit=metric.unit,
    )
    return Chart(metric.key, title, svg)


def drift_chart(reports: Sequence[DriftReport], metric: str, chosen: Window) -> Markup:
    """The statistic of ``metric`` in each report of the range, one line per deployment.

    The threshold is drawn across the range when every report used the same one.
    """
    points: dict[str, tuple[list[datetime], list[float | None]]] = {}
    thresholds: set[float] = set()
    for report in sorted(reports, key=lambda r: r.created_at):
        if report.created_at < chosen.start:
            continue
        for found in report.metrics:
            if found.name != metric or found.statistic is None:
                continue
            times, values = points.setdefault(report.deployment or "all deployments", ([], []))
            times.append(report.created_at)
            values.append(found.statistic)
            thresholds.add(found.threshold)
    series = [Series(name, times, values) for name, (times, values) in points.items()]
    series = series[: MAX_SERIES - 1]
    if len(thresholds) == 1 and series:
        limit = thresholds.pop()
        series.append(Series("threshold", [chosen.start, chosen.end], [limit, limit]))
    return line_chart(
        series,
        title=f"Drift statistic of {metric} over time",
        empty=f"No drift report measured {metric} in this range.",
    )


def chart_reports(viewer: Viewer, deployment: str | None, since: datetime) -> list[DriftReport]:
    """The newest reports back to ``since``, at most ``DRIFT_CHART_REPORTS`` (read by pages)."""
    found: list[DriftReport] = []
    cursor = None
    while len(found) < DRIFT_CHART_REPORTS:
        page = viewer.services.drift.reports(
            viewer.principal, deployment=deployment, cursor=cursor, limit=DRIFT_READ
        )
        found += [r for r in page.items if r.created_at >= since]
        cursor = page.next_cursor
        if cursor is None or not page.items or page.items[-1].created_at < since:
            break
    return found[:DRIFT_CHART_REPORTS]


def _drift_metric(value: str | None, reports: Sequence[DriftReport]) -> str:
    if value:
        if value not in METRICS:
            raise InvalidInput(
                f"drift_metric must be one of {', '.join(METRICS)}", param="drift_metric"
            )
        return value
    for report in reports:  # the newest drift, else the newest measured metric
        if report.drifted_metrics:
            return report.drifted_metrics[0]
    for report in reports:
        for found in report.metrics:
            if found.statistic is not None:
                return found.name
    return METRICS[2]


@dataclass(slots=True)
class RuleView:
    """A rule and its latest transitions."""

    rule: AlertRule
    events: list[AlertEvent] = field(default_factory=list)
    more: bool = False


def histories(viewer: Viewer, rules: Sequence[AlertRule]) -> list[RuleView]:
    """Latest transitions of at most ``HISTORY_RULES`` rules: firing first, then recent changes.

    One query per rule, so only rules that changed state since they were made are read.
    """
    changed = [r for r in rules if r.state == "firing" or r.state_since != r.created_at]
    changed.sort(key=lambda r: (r.state != "firing", -(r.state_since or r.created_at).timestamp()))
    views = []
    for rule in changed[:HISTORY_RULES]:
        events = viewer.services.alerts.events(viewer.principal, rule.id, limit=EVENTS_PER_RULE)
        if events.items:
            views.append(RuleView(rule, list(events.items), events.next_cursor is not None))
    return views


def _query(**params: str | None) -> str:
    return urlencode({k: v for k, v in params.items() if v})


@router.get("/monitoring")
def monitoring(
    request: Request,
    viewer: ViewerDep,
    range: str | None = None,
    deployment: DeploymentName = None,
    drift_metric: Annotated[str | None, Query(max_length=64)] = None,
    drift_cursor: Cursor = None,
    alerts_cursor: Cursor = None,
    notice: Annotated[str | None, Query(max_length=NOTICE_CHARS)] = None,
) -> Response:
    """Time series, drift and alerts of the project (or of one deployment)."""
    services, principal = viewer.services, viewer.principal
    chosen = window(range)
    deployment = deployment or None
    if deployment is not None:
        services.deployments.get(principal, deployment)  # 404 for a name that is not there
    deployments = [d.name for d in services.deployments.list(principal, limit=500).items]
    charts, named, step = time_series(viewer, chosen, deployment)
    recent = chart_reports(viewer, deployment, chosen.start)
    metric = _drift_metric(drift_metric, recent)
    drift_page = services.drift.reports(
        principal, deployment=deployment, cursor=drift_cursor, limit=DRIFT_PAGE
    )
    rules = services.alerts.list(principal, cursor=alerts_cursor, limit=ALERT_PAGE)
    here = {"range": chosen.key, "deployment": deployment, "drift_metric": drift_metric}
    return renderer(request).page(
        request,
        "monitoring.html",
        {
            "title": "Monitoring",
            "range": chosen.key,
            "deployment": deployment,
            "deployments": deployments,
            "charts": charts,
            "named_series": named,
            "bucket": format_window(step),
            "group_label": "Version" if deployment else "Deployment",
            "drift_metric": metric,
            "drift_metrics": METRICS,
            "drift_chart": drift_chart(recent, metric, chosen),
            "reports": drift_page.items,
            "drift_next": _more(here, "drift_cursor", drift_page.next_cursor),
            "rules": rules.items,
            "histories": histories(viewer, rules.items),
            "alerts_next": _more(here, "alerts_cursor", rules.next_cursor),
            "alert_metrics": ALERT_METRICS,
            "windows": WINDOWS,
            "ops": OPS,
            "severities": SEVERITIES,
            "format_window": format_window,
            "notice": notice,
        },
    )


def _more(params: dict[str, str | None], name: str, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    return "/monitoring?" + _query(**params, **{name: cursor})


# -- drift report -----------------------------------------------------------------------------


@dataclass(slots=True)
class Evidence:
    """A metric's evidence, sorted into shapes the page can show as tables and lists."""

    facts: list[tuple[str, Any]] = field(default_factory=list)
    histogram: list[tuple[str, float | None, float | None]] = field(default_factory=list)
    shares: list[tuple[str, Any, Any]] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[Any]]]] = field(default_factory=list)
    lists: list[tuple[str, list[Any]]] = field(default_factory=list)


def _bin_labels(edges: list[float], count: int) -> list[str]:
    """Labels of PSI bins: split at the reference's inner quantiles (``edges[1:-1]``)."""
    inner = edges[1:-1]
    if count == 1:
        return ["all values"]
    if len(inner) != count - 1:
        return [f"bin {i + 1}" for i in range(count)]
    labels = [f"below {inner[0]:g}"]
    labels += [f"{low:g} to below {high:g}" for low, high in pairwise(inner)]
    labels.append(f"{inner[-1]:g} and above")
    return labels


def _histogram_rows(bins: dict[str, Any]) -> list[tuple[str, float | None, float | None]]:
    ref = list(bins.get("reference_share") or [])
    cur = list(bins.get("current_share") or [])
    count = max(len(ref), len(cur))
    labels = _bin_labels([float(e) for e in bins.get("edges") or []], count)
    return [
        (labels[i], ref[i] if i < len(ref) else None, cur[i] if i < len(cur) else None)
        for i in range(count)
    ]


def _as_table(name: str, items: list[dict[str, Any]]) -> tuple[str, list[str], list[list[Any]]]:
    headers: list[str] = []
    for item in items:
        headers += [key for key in item if key not in headers]
    return name, headers, [[item.get(key) for key in headers] for item in items]


def evidence_view(evidence: dict[str, Any]) -> Evidence:
    """Scalars as facts, histograms and share maps as tables, examples as lists."""
    out = Evidence()
    reference_shares = evidence.get("reference_share")
    current_shares = evidence.get("current_share")
    if isinstance(reference_shares, dict) and isinstance(current_shares, dict):
        keys = sorted(set(reference_shares) | set(current_shares))
        out.shares = [(k, reference_shares.get(k), current_shares.get(k)) for k in keys]
    for key, value in evidence.items():
        title = key.replace("_", " ")
        if out.shares and key in ("reference_share", "current_share"):
            continue
        if key == "histogram" and isinstance(value, dict):
            out.histogram = _histogram_rows(value)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out.tables.append(_as_table(title, value))
        elif isinstance(value, list | dict):
            out.lists.append((title, _flat(value)))
        else:
            out.facts.append((title, value))
    return out


def _flat(value: list[Any] | dict[str, Any]) -> list[Any]:
    if isinstance(value, dict):
        return [f"{k}: {v}" for k, v in value.items()]
    return list(value)


def _reference_window(report: DriftReport) -> tuple[datetime, datetime] | None:
    """A window reference's bounds as times (the report stores them as ISO text)."""
    ref = report.reference
    if ref.get("kind") != "window":
        return None
    try:
        return datetime.fromisoformat(str(ref["start"])), datetime.fromisoformat(str(ref["end"]))
    except (KeyError, ValueError):
        return None


@router.get("/monitoring/drift/{report_id}")
def drift_report(
    request: Request, viewer: ViewerDep, report_id: Annotated[int, Path(ge=1, le=MAX_INT32)]
) -> Response:
    """One drift report: both windows, and every metric's statistics and evidence."""
    report = viewer.services.drift.report(viewer.principal, report_id)
    return renderer(request).page(
        request,
        "monitoring_drift.html",
        {
            "title": f"Drift report {report.id}",
            "report": report,
            "evidence": {m.name: evidence_view(m.evidence) for m in report.metrics},
            "reference_window": _reference_window(report),
        },
    )


# -- alert rules ------------------------------------------------------------------------------


def _window_seconds(value: str) -> int:
    text = value.strip()
    if text in WINDOWS:
        return WINDOWS[text]
    if text.isdigit():
        return int(text)
    raise InvalidInput(
        f"window must be one of {', '.join(WINDOWS)} or a number of seconds", param="window"
    )


def _readable(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def rule_body(fields: dict[str, str]) -> AlertRuleCreate:
    """The form's fields as a rule; a clear ``InvalidInput`` (400) when one is wrong."""
    values: dict[str, Any] = {
        "name": fields["name"].strip(),
        "metric": fields["metric"].strip(),
        "op": fields["op"],
        "threshold": fields["threshold"].strip(),
        "window_s": _window_seconds(fields["window"]),
        "severity": fields["severity"],
    }
    if fields.get("deployment"):
        values["deployment"] = fields["deployment"]
    if fields.get("min_requests", "").strip():
        values["min_requests"] = fields["min_requests"].strip()
    try:
        return AlertRuleCreate.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(f"the alert rule is not valid: {_readable(exc)}") from None


def _back(notice: str, anchor: str = "alerts-h") -> RedirectResponse:
    if len(notice) > NOTICE_CHARS:
        notice = notice[: NOTICE_CHARS - 1] + "…"
    return RedirectResponse(f"/monitoring?notice={quote(notice)}#{anchor}", 303)


@router.post("/monitoring/alerts", dependencies=[FormChecked])
def create_rule(
    viewer: ViewerDep,
    name: Annotated[str, Form(max_length=200)],
    metric: Annotated[str, Form(max_length=200)],
    op: Annotated[str, Form(max_length=4)],
    threshold: Annotated[str, Form(max_length=60)],
    window: Annotated[str, Form(max_length=20)] = "5m",
    severity: Annotated[str, Form(max_length=20)] = "warning",
    deployment: Annotated[str, Form(max_length=200)] = "",
    min_requests: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Create a rule from the form (maintainer+; the service checks and audits)."""
    body = rule_body(
        {
            "name": name,
            "metric": metric,
            "op": op,
            "threshold": threshold,
            "window": window,
            "severity": severity,
            "deployment": deployment,
            "min_requests": min_requests,
        }
    )
    rule = viewer.services.alerts.create(viewer.principal, body)
    return _back(f"Alert rule {rule.name} created.", f"alert-{rule.id}")


@router.post("/monitoring/alerts/evaluate", dependencies=[FormChecked])
def evaluate_rules(viewer: ViewerDep) -> Response:
    """Evaluate every rule now instead of waiting for the worker (maintainer+)."""
    result = viewer.services.alerts.evaluate(viewer.principal)
    changed = ", ".join(f"{t.rule} {t.state}" for t in result.transitions) or "no change"
    return _back(f"Evaluated {result.evaluated} rules: {changed}.")


@router.get("/monitoring/alerts/{rule_id}")
def rule_history(
    request: Request, viewer: ViewerDep, rule_id: RuleId, cursor: Cursor = None
) -> Response:
    """One rule and its full history, newest first."""
    rule = viewer.services.alerts.get(viewer.principal, rule_id)
    events = viewer.services.alerts.events(
        viewer.principal, rule_id, cursor=cursor, limit=HISTORY_PAGE
    )
    return renderer(request).page(
        request,
        "monitoring_rule.html",
        {
            "title": f"Alert rule {rule.name}",
            "rule": rule,
            "events": events.items,
            "next_cursor": events.next_cursor,
            "format_window": format_window,
        },
    )


@router.get("/monitoring/alerts/{rule_id}/confirm-delete")
def confirm_delete(request: Request, viewer: ViewerDep, rule_id: RuleId) -> Response:
    """What deleting the rule does, and the button that does it."""
    rule = viewer.services.alerts.get(viewer.principal, rule_id)
    return renderer(request).page(
        request,
        "monitoring_delete.html",
        {"title": f"Delete alert rule {rule.name}", "rule": rule, "format_window": format_window},
    )


@router.post("/monitoring/alerts/{rule_id}/delete", dependencies=[FormChecked])
def delete_rule(viewer: ViewerDep, rule_id: RuleId) -> Response:
    """Delete the rule and its history (maintainer+; the audit log keeps the record)."""
    rule = viewer.services.alerts.get(viewer.principal, rule_id)
    viewer.services.alerts.delete(viewer.principal, rule_id)
    return _back(f"Alert rule {rule.name} deleted.")
