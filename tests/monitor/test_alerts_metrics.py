"""Every alert metric reads the right rows: its window, deployment, version, and drift reports.

Spans are written at chosen times (as the SDK or OTLP ingest would), so the window's
edges are exact: the partly elapsed current minute counts, spans older than the
window do not, shadow traffic counts only for a rule on its version, and rates on
fewer than ``min_requests`` requests are "no data".
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.monitor import SpanRecord
from modelcycle.monitor.alert_rules import AlertRuleCreate
from modelcycle.monitor.writer import RollupDelta
from modelcycle.services import Services
from modelcycle.store.tables import DriftReportRow, utcnow
from modelcycle.testing import KeyPair, register

NOW = utcnow().replace(second=25, microsecond=0) - timedelta(hours=1)
"""Evaluations happen 25 s into a minute, an hour ago (nothing else writes then)."""


def span(
    at: datetime,
    *,
    status: str = "ok",
    duration_ms: float = 100.0,
    deployment: str = "chat",
    version: int = 1,
    route: str = "primary",
    ttft_ms: float | None = None,
    cache_hit: bool = False,
) -> SpanRecord:
    return SpanRecord(
        project_id=1,
        trace_id=uuid.uuid4().hex,
        span_id=uuid.uuid4().hex[:16],
        name=f"chat.completions {deployment}",
        kind="llm",
        source="sdk",
        start_time=at,
        end_time=at + timedelta(milliseconds=duration_ms),
        duration_ms=duration_ms,
        status=status,
        deployment=deployment,
        model="bot",
        version=version,
        route=route,
        input_tokens=3,
        output_tokens=4,
        cost=0.01,
        ttft_ms=ttft_ms,
        cache_hit=cache_hit,
    )


@pytest.fixture
def traffic(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Services:
    services, admin = modelcycle_services, modelcycle_admin.principal
    register(services, admin, "bot")
    for name in ("chat", "other"):
        spec = DeploymentSpec(name=name, routes=[Route(target="bot@1", weight=100)])
        services.deployments.create(admin, spec)
    assert admin.project_id == 1
    spans = [span(NOW - timedelta(seconds=40), ttft_ms=50.0 if i < 4 else None) for i in range(8)]
    spans[0].cache_hit = spans[1].cache_hit = True
    spans += [
        span(NOW - timedelta(seconds=50), status="error", duration_ms=1000.0) for _ in range(2)
    ]
    spans.append(span(NOW - timedelta(seconds=20)))  # the current minute, partly elapsed
    spans += [span(NOW, status="error", version=2, route="shadow") for _ in range(5)]
    spans += [span(NOW - timedelta(minutes=10), status="error") for _ in range(3)]  # too old
    spans.append(span(NOW + timedelta(minutes=1), status="error"))  # after the evaluation
    services.recorder.writer.write(spans)
    feedback = RollupDelta(feedback_count=4, feedback_sum=3.0)
    with services.store.write() as session:
        key = (1, NOW.replace(second=0), "chat", "bot", 1, "primary")
        services.recorder.writer.fold(session, {key: feedback})
    return services


def values_of(
    services: Services, admin: KeyPair, cases: list[tuple[str, dict[str, object]]]
) -> list[float | None]:
    """Create a rule per (metric, fields), evaluate them all at ``NOW``, return what each saw."""
    ids = []
    for index, (metric, fields) in enumerate(cases):
        body = {"name": f"r{index}", "metric": metric, "op": ">", "threshold": 1e12} | fields
        body.setdefault("window_s", 300)
        ids.append(services.alerts.create(admin.principal, AlertRuleCreate.model_validate(body)).id)
    services.alerts.evaluate_all(now=NOW)
    return [services.alerts.get(admin.principal, rule_id).last_value for rule_id in ids]


ROLLUP_CASES: list[tuple[str, dict[str, object], float | None]] = [
    ("requests", {}, 11),
    ("error_rate", {}, 2 / 11),
    ("tokens", {}, 77),
    ("cost", {}, 0.11),
    ("cache_hit_rate", {}, 2 / 11),
    ("feedback_count", {}, 4),
    ("feedback_score", {}, 0.75),
    ("requests", {"deployment": "chat"}, 11),
    ("requests", {"deployment": "other"}, 0),  # a count: zero traffic is a value
    ("requests", {"version": 2}, 5),  # shadow traffic counts for its own version
    ("error_rate", {"version": 2}, 1.0),
    ("requests", {"window_s": 3600}, 14),
    ("error_rate", {"min_requests": 12}, None),
    ("feedback_score", {"min_requests": 5}, None),
    ("ttft_p95_ms", {"min_requests": 5}, None),
    ("error_rate", {"deployment": "other"}, None),  # a rate of nothing is no data
]


def test_rollup_metrics_over_the_window(traffic: Services, modelcycle_admin: KeyPair) -> None:
    cases = [(metric, fields) for metric, fields, _ in ROLLUP_CASES]
    found = values_of(traffic, modelcycle_admin, cases)
    expected = [None if e is None else pytest.approx(e) for _, _, e in ROLLUP_CASES]
    assert list(zip(cases, found, strict=True)) == list(zip(cases, expected, strict=True))


def test_percentiles_come_from_the_merged_histograms(
    traffic: Services, modelcycle_admin: KeyPair
) -> None:
    # Log buckets 25% wide: a percentile is within a bucket of the exact value.
    p50, p99, ttft = values_of(
        traffic,
        modelcycle_admin,
        [("latency_p50_ms", {}), ("latency_p99_ms", {}), ("ttft_p95_ms", {})],
    )
    assert p50 is not None
    assert 100 / 1.25 <= p50 <= 100 * 1.25
    assert p99 is not None
    assert 1000 / 1.25 <= p99 <= 1000 * 1.25
    assert ttft is not None
    assert 50 / 1.25 <= ttft <= 50 * 1.25


def drift_report(services: Services, age: timedelta, auc: float, drifted: bool) -> None:
    with services.store.write() as session:
        session.add(
            DriftReportRow(
                project_id=1,
                deployment="chat",
                current_from=NOW - age - timedelta(hours=1),
                current_to=NOW - age,
                reference={"kind": "window"},
                metrics=[
                    {
                        "name": "embedding_auc",
                        "statistic": auc,
                        "p_value": 0.001,
                        "threshold": 0.7,
                        "drifted": drifted,
                    },
                    {
                        "name": "prompt_length_psi",
                        "statistic": 0.05,
                        "p_value": None,
                        "threshold": 0.2,
                        "drifted": False,
                    },
                ],
                drifted=drifted,
                created_by="system:worker",
                created_at=NOW - age,
            )
        )


DRIFT_CASES: list[tuple[str, dict[str, object], float | None]] = [
    ("drift.embedding_auc", {}, 0.82),  # the latest report, not the older one
    ("drift.prompt_length_psi", {}, 0.05),
    ("drift.any", {}, 1.0),
    ("drift.any", {"deployment": "chat"}, 1.0),
    ("drift.any", {"deployment": "other"}, None),
    ("drift.refusal_rate", {}, None),  # not measured by the report
    ("drift.any", {"window_s": 60}, None),  # the latest report is 2 minutes old
]


def test_drift_metrics_read_the_latest_report_in_the_window(
    traffic: Services, modelcycle_admin: KeyPair
) -> None:
    drift_report(traffic, timedelta(minutes=4), auc=0.5, drifted=False)
    drift_report(traffic, timedelta(minutes=2), auc=0.82, drifted=True)
    cases = [(metric, fields) for metric, fields, _ in DRIFT_CASES]
    found = values_of(traffic, modelcycle_admin, cases)
    assert list(zip(cases, found, strict=True)) == [
        (c, e) for c, (_, _, e) in zip(cases, DRIFT_CASES, strict=False)
    ]


def test_a_drift_rule_fires_on_the_reports_statistic(
    traffic: Services, modelcycle_admin: KeyPair
) -> None:
    drift_report(traffic, timedelta(minutes=2), auc=0.82, drifted=True)
    body = {
        "name": "embeddings-moved",
        "metric": "drift.embedding_auc",
        "op": ">=",
        "threshold": 0.7,
        "window_s": 3600,
        "deployment": "chat",
    }
    rule = traffic.alerts.create(modelcycle_admin.principal, AlertRuleCreate.model_validate(body))
    assert traffic.alerts.evaluate_all(now=NOW) == 1
    [event] = traffic.alerts.events(modelcycle_admin.principal, rule.id).items
    assert (event.state, event.value) == ("firing", 0.82)
    assert "drift.embedding_auc is 0.82, >= 0.7 on deployment chat" in event.message
