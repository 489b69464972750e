"""The value of an alert rule's metric over its window: rollups, drift reports, online scores.

Rollup rows are per minute, so a window covers every minute row from the one
holding ``now - window_s`` to the one holding ``now``: the partly elapsed
current minute counts, and so does the whole first minute (a window is never
shorter than asked). Without a version, shadow traffic is left out — it never
answers clients; a rule on a version counts all of that version's requests.
An ``online_score:<scorer>`` metric is the mean of the scorer's values on the
traces that started in the window (online evaluation never scores shadow
traffic, nor counts a trace it could not score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from modelcycle.monitor import histogram
from modelcycle.monitor.alert_rules import DRIFT_ANY, DRIFT_PREFIX, ONLINE_SCORE_PREFIX
from modelcycle.store.tables import DriftReportRow, OnlineScoreRow, SpanRollupRow

_PERCENTILES = {
    "latency_p50_ms": ("latency_hist", 0.50),
    "latency_p95_ms": ("latency_hist", 0.95),
    "latency_p99_ms": ("latency_hist", 0.99),
    "ttft_p95_ms": ("ttft_hist", 0.95),
}


@dataclass(frozen=True, slots=True)
class Scope:
    """What a rule measures: metric, project, deployment/version and window."""

    project_id: int
    metric: str
    deployment: str | None
    version: int | None
    window_s: int
    min_requests: int


@dataclass(frozen=True, slots=True)
class Reading:
    """A metric's value (``None``: no data) and what it was computed from, for messages."""

    value: float | None
    basis: str


def measure(session: Session, scope: Scope, now: datetime) -> Reading:
    """The value of ``scope.metric`` over the window ending at ``now``."""
    if scope.metric.startswith(DRIFT_PREFIX):
        return _drift(session, scope, now)
    if scope.metric.startswith(ONLINE_SCORE_PREFIX):
        return _online_score(session, scope, now)
    return _rollup(session, scope, now)


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _rollup_filter(scope: Scope, now: datetime) -> list[Any]:
    start = _minute(now - timedelta(seconds=scope.window_s))
    conditions: list[Any] = [
        SpanRollupRow.project_id == scope.project_id,
        SpanRollupRow.minute >= start,
        SpanRollupRow.minute <= now,
    ]
    if scope.deployment is not None:
        conditions.append(SpanRollupRow.deployment == scope.deployment)
    if scope.version is not None:
        conditions.append(SpanRollupRow.version == scope.version)
    else:
        conditions.append(SpanRollupRow.route != "shadow")
    return conditions


def _rollup(session: Session, scope: Scope, now: datetime) -> Reading:
    conditions = _rollup_filter(scope, now)
    if scope.metric in _PERCENTILES:
        return _percentile(session, scope, conditions)
    row = session.execute(
        select(
            *(
                func.coalesce(func.sum(getattr(SpanRollupRow, name)), 0).label(name)
                for name in _Totals.__dataclass_fields__
            )
        ).where(*conditions)
    ).one()
    return _from_totals(_Totals(**row._asdict()), scope)


@dataclass(frozen=True, slots=True)
class _Totals:
    """Sums of rollup columns over a window (field names are the column names)."""

    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost: float
    cache_hits: int
    feedback_count: int
    feedback_sum: float


def _percentile(session: Session, scope: Scope, conditions: list[Any]) -> Reading:
    column_name, q = _PERCENTILES[scope.metric]
    column = getattr(SpanRollupRow, column_name)
    merged = histogram.merge(hist for (hist,) in session.execute(select(column).where(*conditions)))
    count = sum(merged)
    if count < scope.min_requests:
        return _too_few(count, scope, "requests" if column_name == "latency_hist" else "ttfts")
    return Reading(histogram.quantile(merged, q), f"{count} requests")


def _from_totals(t: _Totals, scope: Scope) -> Reading:
    requests, feedback = int(t.requests), int(t.feedback_count)
    counts = {
        "requests": (requests, f"{requests} requests"),
        "tokens": (t.input_tokens + t.output_tokens, f"{requests} requests"),
        "cost": (t.cost, f"{requests} requests"),
        "feedback_count": (feedback, f"{feedback} feedback"),
    }
    if scope.metric in counts:
        value, basis = counts[scope.metric]
        return Reading(float(value), basis)
    if scope.metric == "feedback_score":
        if feedback < scope.min_requests:
            return _too_few(feedback, scope, "feedback")
        return Reading(float(t.feedback_sum) / feedback, f"{feedback} feedback")
    if requests < scope.min_requests:
        return _too_few(requests, scope, "requests")
    if scope.metric == "error_rate":
        return Reading(int(t.errors) / requests, f"{int(t.errors)} of {requests} requests failed")
    return Reading(
        int(t.cache_hits) / requests, f"{int(t.cache_hits)} of {requests} from the cache"
    )


def _too_few(count: int, scope: Scope, what: str) -> Reading:
    return Reading(None, f"{count} {what}, fewer than min_requests={scope.min_requests}")


def _drift(session: Session, scope: Scope, now: datetime) -> Reading:
    query = select(DriftReportRow).where(
        DriftReportRow.project_id == scope.project_id,
        DriftReportRow.created_at >= now - timedelta(seconds=scope.window_s),
        DriftReportRow.created_at <= now,
    )
    if scope.deployment is not None:
        query = query.where(DriftReportRow.deployment == scope.deployment)
    report = session.execute(
        query.order_by(DriftReportRow.created_at.desc(), DriftReportRow.id.desc()).limit(1)
    ).scalar_one_or_none()
    if report is None:
        return Reading(None, "no drift report in the window")
    basis = f"drift report {report.id}"
    if scope.metric == DRIFT_ANY:
        return Reading(1.0 if report.drifted else 0.0, basis)
    name = scope.metric.removeprefix(DRIFT_PREFIX)
    for entry in report.metrics:
        if isinstance(entry, dict) and entry.get("name") == name:
            statistic = entry.get("statistic")
            if isinstance(statistic, int | float) and math.isfinite(statistic):
                return Reading(float(statistic), basis)
            return Reading(None, f"{basis} has no statistic for {name}")
    return Reading(None, f"{basis} does not measure {name}")


def _online_score(session: Session, scope: Scope, now: datetime) -> Reading:
    """The mean of an online scorer's values on the traces that started in the window."""
    scorer = scope.metric.removeprefix(ONLINE_SCORE_PREFIX)
    query = select(func.count(OnlineScoreRow.value), func.avg(OnlineScoreRow.value)).where(
        OnlineScoreRow.project_id == scope.project_id,
        OnlineScoreRow.scorer == scorer,
        OnlineScoreRow.trace_start >= now - timedelta(seconds=scope.window_s),
        OnlineScoreRow.trace_start <= now,
    )
    if scope.deployment is not None:
        query = query.where(OnlineScoreRow.deployment == scope.deployment)
    if scope.version is not None:
        query = query.where(OnlineScoreRow.version == scope.version)
    count, mean = session.execute(query).one()
    if int(count) < scope.min_requests:
        return _too_few(int(count), scope, f"{scorer} scores")
    return Reading(float(mean), f"mean of {int(count)} {scorer} scores")
