"""What happened to one version in production: traffic, guard decisions, incidents, changes."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from modelcycle.monitor.queries import LLM_KINDS
from modelcycle.monitor.trace_schemas import Rollups
from modelcycle.reports.schemas import (
    AlertIncident,
    AlertRuleRef,
    Change,
    Changes,
    DriftIncident,
    Incidents,
    Monitoring,
    TrafficSlice,
)
from modelcycle.store.tables import (
    AlertEventRow,
    AlertRuleRow,
    AuditEntryRow,
    DriftReportRow,
    SpanRow,
)

MAX_CHANGES = 500
"""Audit entries shown at most (the newest; ``Changes.truncated`` says when more exist)."""
MAX_INCIDENTS = 500
"""Alert transitions and drift reports shown at most each (the newest)."""


def monitoring(
    rollups: Rollups, days: int, guard: dict[str, int], before_routing: dict[str, int]
) -> Monitoring:
    """The window's totals and per-route split of the version's rollups."""
    total = rollups.summary
    return Monitoring(
        start=rollups.start,
        end=rollups.end,
        days=days,
        requests=total.requests,
        errors=total.errors,
        error_rate=total.error_rate,
        latency_p50_ms=total.latency_p50_ms,
        latency_p95_ms=total.latency_p95_ms,
        input_tokens=total.input_tokens,
        output_tokens=total.output_tokens,
        cost=total.cost,
        feedback_count=total.feedback_count,
        feedback_score=total.feedback_score,
        by_route=[
            TrafficSlice(
                deployment=series.deployment,
                route=series.route,
                requests=series.summary.requests,
                errors=series.summary.errors,
                error_rate=series.summary.error_rate,
                latency_p50_ms=series.summary.latency_p50_ms,
                latency_p95_ms=series.summary.latency_p95_ms,
            )
            for series in rollups.series
        ],
        guard_decisions=guard,
        guard_before_routing=before_routing,
    )


def guard_counts(
    session: Session,
    project_id: int,
    start: datetime,
    end: datetime,
    *conditions: ColumnElement[bool],
) -> dict[str, int]:
    """Model calls per guard action (``none``: no guard ran) in ``[start, end)``."""
    rows = session.execute(
        select(SpanRow.guard, func.count())
        .where(
            SpanRow.project_id == project_id,
            SpanRow.start_time >= start,
            SpanRow.start_time < end,
            SpanRow.kind.in_(LLM_KINDS),
            *conditions,
        )
        .group_by(SpanRow.guard)
    ).all()
    return {str(action or "none"): int(count) for action, count in sorted(rows, key=_by_action)}


def _by_action(row: Any) -> str:
    return str(row[0] or "")


def version_spans(model: str, version: int) -> ColumnElement[bool]:
    """Spans answered by ``model@version``."""
    return (SpanRow.model == model) & (SpanRow.version == version)


def unrouted_spans(deployments: Collection[str]) -> ColumnElement[bool]:
    """Spans of ``deployments`` that ended before a version was chosen."""
    return SpanRow.deployment.in_(sorted(deployments)) & SpanRow.version.is_(None)


def incidents(
    session: Session,
    project_id: int,
    deployments: Collection[str],
    start: datetime,
    end: datetime,
) -> Incidents:
    """Alert rules on ``deployments``, their transitions and drift reports in the window."""
    names = sorted(deployments)
    rules = (
        session.execute(
            select(AlertRuleRow)
            .where(AlertRuleRow.project_id == project_id, AlertRuleRow.deployment.in_(names))
            .order_by(AlertRuleRow.name)
        )
        .scalars()
        .all()
    )
    by_id = {rule.id: rule for rule in rules}
    events = session.execute(
        select(AlertEventRow)
        .where(
            AlertEventRow.rule_id.in_(list(by_id)),
            AlertEventRow.at >= start,
            AlertEventRow.at < end,
        )
        .order_by(AlertEventRow.at.desc(), AlertEventRow.id.desc())
        .limit(MAX_INCIDENTS)
    ).scalars()
    reports = session.execute(
        select(DriftReportRow)
        .where(
            DriftReportRow.project_id == project_id,
            DriftReportRow.deployment.in_(names),
            DriftReportRow.created_at >= start,
            DriftReportRow.created_at < end,
        )
        .order_by(DriftReportRow.created_at.desc(), DriftReportRow.id.desc())
        .limit(MAX_INCIDENTS)
    ).scalars()
    return Incidents(
        rules=[
            AlertRuleRef(
                name=rule.name,
                metric=rule.metric,
                deployment=rule.deployment,
                op=rule.op,
                threshold=rule.threshold,
                severity=rule.severity,
                enabled=rule.enabled,
                state=rule.state,
            )
            for rule in rules
        ],
        alerts=[
            AlertIncident(
                rule=by_id[event.rule_id].name,
                deployment=by_id[event.rule_id].deployment,
                severity=by_id[event.rule_id].severity,
                state=event.state,
                value=event.value,
                threshold=event.threshold,
                message=event.message,
                at=event.at,
            )
            for event in events
        ],
        drift=[
            DriftIncident(
                report_id=report.id,
                deployment=report.deployment,
                drifted=report.drifted,
                drifted_metrics=[str(m.get("name")) for m in report.metrics if m.get("drifted")],
                created_by=report.created_by,
                created_at=report.created_at,
            )
            for report in reports
        ],
    )


def changes(
    session: Session,
    project: str,
    model: str,
    version: int,
    deployments: Collection[str],
    guard_policies: Collection[str],
    alert_rules: Collection[str],
) -> Changes:
    """Audit entries touching the version, oldest first (the newest ``MAX_CHANGES``).

    That is: the model, the version, aliases that pointed at it, the deployments
    serving it, the guard policies they name and the alert rules watching them.
    """
    exact = [f"model:{model}", f"model:{model}@{version}"]
    exact += [f"deployment:{name}" for name in sorted(deployments)]
    exact += [f"guard_policy:{name}" for name in sorted(guard_policies)]
    exact += [f"alert:{name}" for name in sorted(alert_rules)]
    alias_prefix = f"model:{model}/alias:"
    conditions = [
        AuditEntryRow.target.in_(exact),
        AuditEntryRow.target.startswith(alias_prefix, autoescape=True),
    ]
    rows = session.execute(
        select(AuditEntryRow)
        .where(AuditEntryRow.project == project, or_(*conditions))
        .order_by(AuditEntryRow.seq.desc())
    ).scalars()
    kept: list[Change] = []
    truncated = False
    for row in rows:
        if row.target.startswith(alias_prefix) and not _alias_touches(row, version):
            continue
        if len(kept) == MAX_CHANGES:
            truncated = True
            break
        kept.append(
            Change(seq=row.seq, at=row.at, actor=row.actor, action=row.action, target=row.target)
        )
    return Changes(entries=kept[::-1], truncated=truncated)


def _alias_touches(row: AuditEntryRow, version: int) -> bool:
    """Whether an alias move came from or went to ``version``."""
    return any(
        isinstance(side, dict) and side.get("version") == version
        for side in (row.before, row.after)
    )
