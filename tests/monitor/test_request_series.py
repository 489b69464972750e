"""The request path's counters and histograms scrape exactly as prometheus_client's do."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.parser import text_string_to_metric_families

from modelcycle.monitor.request_series import LabelledCounter, LabelledHistogram

BUCKETS = (0.001, 0.5, 1, 4.0)
VALUES = (0.0005, 0.001, 0.3, 0.5, 1, 2, 9, 0.0)


def _without_created(text: str) -> str:
    """Creation times differ by microseconds between the two registries."""
    return re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1", text)


def _registries() -> tuple[CollectorRegistry, CollectorRegistry]:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram(
        "x_seconds", "How long.", ("op", "status"), buckets=BUCKETS, registry=theirs
    )
    counter = Counter("x_requests", "How many.", ("op",), registry=theirs)
    our_histogram = LabelledHistogram("x_seconds", "How long.", ("op", "status"), BUCKETS)
    our_counter = LabelledCounter("x_requests", "How many.", ("op",))
    ours.register(our_histogram)
    ours.register(our_counter)
    for i, value in enumerate(VALUES):
        labels = ("chat", "ok" if i % 3 else "error")
        histogram.labels(*labels).observe(value)
        our_histogram.child(labels).observe(value)
        counter.labels("chat").inc()
        our_counter.child(("chat",)).value += 1
    return theirs, ours


@pytest.mark.parametrize("encode", [generate_latest, openmetrics_latest])
def test_a_scrape_is_the_same_as_prometheus_clients(encode: object) -> None:
    theirs, ours = _registries()
    assert callable(encode)
    expected, found = encode(theirs).decode(), encode(ours).decode()

    assert _without_created(found) == _without_created(expected)
    assert "x_seconds_bucket" in found


def test_a_value_on_a_bound_counts_in_that_bucket_and_creation_times_are_served() -> None:
    _, ours = _registries()
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(ours).decode())}

    buckets = {
        (s.labels["status"], s.labels["le"]): s.value
        for s in families["x_seconds"].samples
        if s.name == "x_seconds_bucket"
    }
    # ok: 0.001, 0.3, 1, 2, 0.0 -- error: 0.0005, 0.5, 9
    assert buckets[("ok", "0.001")] == 2
    assert buckets[("ok", "0.5")] == 3
    assert buckets[("ok", "1.0")] == 4
    assert buckets[("ok", "+Inf")] == 5
    assert buckets[("error", "0.001")] == 1
    assert buckets[("error", "0.5")] == 2
    assert buckets[("error", "4.0")] == 2
    created = [s for f in families.values() for s in f.samples if s.name.endswith("_created")]
    assert len(created) == 3
    assert all(s.value > 1.7e9 for s in created)
