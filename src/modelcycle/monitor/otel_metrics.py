"""The request metrics of ``Metrics`` as OTLP data, under their OpenTelemetry names.

Read from the Prometheus registry, which counts every span once anyway:
recording each measurement into the OpenTelemetry SDK as well cost ~150 µs per
span in the trace writer thread; reading the totals once per export costs
nothing per span. Prometheus-style buckets keep no minimum or maximum, so those
optional OTLP fields stay unset.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.metrics.export import Metric as OtelMetric
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.registry import Collector

from modelcycle.monitor.metrics import Metrics

PROVIDER = "modelcycle"
"""``gen_ai.provider.name``: the gateway serves the answer, whatever engine ran it."""

_METRICS = (
    ("requests", "modelcycle.requests", "{request}", "Gateway requests."),
    ("duration", "gen_ai.client.operation.duration", "s", "Duration of gateway requests."),
    ("tokens", "gen_ai.client.token.usage", "{token}", "Tokens per gateway request."),
    ("ttft", "gen_ai.server.time_to_first_token", "s", "Time to the first streamed token."),
)
"""``Metrics`` attribute, OpenTelemetry name, unit, description."""

_ATTRIBUTES = {
    "gen_ai_operation_name": "gen_ai.operation.name",
    "deployment": "gen_ai.request.model",
    "version": "gen_ai.response.model",
    "route": "modelcycle.route",
    "status": "modelcycle.status",
    "gen_ai_token_type": "gen_ai.token.type",
}
"""Prometheus label -> OpenTelemetry attribute."""


def metrics_data(metrics: Metrics, resource: Resource, scope: InstrumentationScope) -> MetricsData:
    """The request metrics' cumulative values as OTLP data."""
    now = time.time_ns()
    found = []
    for attribute, name, unit, description in _METRICS:
        metric: Collector = getattr(metrics, attribute)
        for family in metric.collect():
            data = _histogram(family, now) if family.type == "histogram" else _sum(family, now)
            found.append(OtelMetric(name=name, description=description, unit=unit, data=data))
    return MetricsData(
        resource_metrics=[
            ResourceMetrics(
                resource=resource,
                scope_metrics=[ScopeMetrics(scope=scope, metrics=found, schema_url="")],
                schema_url="",
            )
        ]
    )


def _otel_attributes(labels: dict[str, str]) -> dict[str, str]:
    found = {_ATTRIBUTES.get(k, k): v for k, v in labels.items() if k != "le"}
    found["gen_ai.provider.name"] = PROVIDER
    return found


def _series(family: Any) -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
    """A family's samples grouped by label set (without ``le``), by sample suffix."""
    grouped: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for sample in family.samples:
        key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
        entry = grouped.setdefault(key, {"labels": sample.labels, "buckets": []})
        suffix = sample.name[len(family.name) :]
        if suffix == "_bucket":
            entry["buckets"].append((float(sample.labels["le"]), sample.value))
        else:
            entry[suffix] = sample.value
    return grouped


def _sum(family: Any, now: int) -> Sum:
    points = [
        NumberDataPoint(
            attributes=_otel_attributes(entry["labels"]),
            start_time_unix_nano=int(entry.get("_created", 0) * 1e9),
            time_unix_nano=now,
            value=int(entry["_total"]),
        )
        for entry in _series(family).values()
    ]
    return Sum(
        data_points=points,
        aggregation_temporality=AggregationTemporality.CUMULATIVE,
        is_monotonic=True,
    )


def _histogram(family: Any, now: int) -> HistogramData:
    points = []
    for entry in _series(family).values():
        cumulative = sorted(entry["buckets"])
        counts = [
            int(n - (cumulative[i - 1][1] if i else 0)) for i, (_, n) in enumerate(cumulative)
        ]
        points.append(
            HistogramDataPoint(
                attributes=_otel_attributes(entry["labels"]),
                start_time_unix_nano=int(entry.get("_created", 0) * 1e9),
                time_unix_nano=now,
                count=int(entry["_count"]),
                sum=entry["_sum"],
                bucket_counts=counts,
                explicit_bounds=[bound for bound, _ in cumulative if bound != float("inf")],
                min=None,  # type: ignore[arg-type]  # unknown: unset in OTLP
                max=None,  # type: ignore[arg-type]
            )
        )
    return HistogramData(
        data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE
    )
