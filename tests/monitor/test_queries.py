"""Trace search, one trace in full, and rollups, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from modelcycle.errors import InvalidInput, NotFound, PermissionDenied
from modelcycle.monitor.trace_schemas import (
    FeedbackCreate,
    RollupQuery,
    TraceFilter,
)
from modelcycle.services import Services
from modelcycle.testing import KeyPair, make_key, make_project
from modelcycle.types import Role
from monitor.trace_factory import NOW, app_trace, llm_span, trace_id

HISTOGRAM_ERROR = 0.125
"""Buckets grow by 25%: a percentile read from them is within ~12% of the exact one."""


def search(services: Services, who: KeyPair, **filters: Any) -> list[str]:
    page = services.traces.search(who.principal, TraceFilter(**filters), now=NOW)
    return [row.trace_id for row in page.data]


def test_search_lists_each_trace_once_newest_first_summarised_by_its_root(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    pid = modelcycle_admin.principal.project_id
    old = llm_span(pid, ago=timedelta(minutes=30))
    app = app_trace(pid, ago=timedelta(minutes=20))
    new = llm_span(pid, ago=timedelta(minutes=10), user_id="bob", cost=0.25)
    modelcycle_services.recorder.writer.write([old, *app, new])

    page = modelcycle_services.traces.search(modelcycle_admin.principal, TraceFilter(), now=NOW)

    assert [row.trace_id for row in page.data] == [new.trace_id, app[0].trace_id, old.trace_id]
    assert page.next_cursor is None
    summary = page.data[1]
    assert (summary.name, summary.kind, summary.source) == ("answer_question", "chain", "sdk")
    assert summary.span_count == 4
    assert (summary.status, summary.error_count) == ("error", 1)  # a child failed
    assert (summary.input_tokens, summary.output_tokens) == (70, 25)  # the model calls only
    assert summary.input == "How do refunds work?"
    assert summary.user_id == "ada"
    assert summary.start_time == app[0].start_time
    assert summary.end_time == app[0].end_time
    assert page.data[0].cost == 0.25
    assert page.data[0].deployment == "chat"


FILTER_CASES = {
    "deployment": ({"deployment": "support"}, ["support"]),
    "model": ({"model": "other-model"}, ["other-model"]),
    "version": ({"version": 2}, ["canary", "app"]),
    "status": ({"status": "error"}, ["error", "app"]),
    "route": ({"route": "canary"}, ["canary", "app"]),
    "user": ({"user_id": "ada"}, ["app"]),
    "session": ({"session_id": "s-9"}, ["session"]),
    "key": ({"key_id": 99}, ["key"]),
    "text in input, any case": ({"text": "CAPITAL OF SPAIN"}, ["spain"]),
    "text in output": ({"text": "madrid"}, ["spain"]),
    "text with wildcard characters": ({"text": "100%_sure"}, ["literal"]),
    "guard": ({"guard": "block"}, ["blocked"]),
    "deployment and status": ({"deployment": "chat", "status": "error"}, ["error", "app"]),
}


def test_each_filter_finds_exactly_the_matching_traces(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    pid = modelcycle_admin.principal.project_id
    named = {
        "plain": [llm_span(pid, ago=timedelta(minutes=1))],
        "support": [llm_span(pid, ago=timedelta(minutes=2), deployment="support")],
        "other-model": [llm_span(pid, ago=timedelta(minutes=3), model="other-model")],
        "canary": [llm_span(pid, ago=timedelta(minutes=4), version=2, route="canary")],
        "error": [llm_span(pid, ago=timedelta(minutes=5), status="error")],
        "session": [llm_span(pid, ago=timedelta(minutes=6), session_id="s-9")],
        "key": [llm_span(pid, ago=timedelta(minutes=7), key_id=99)],
        "spain": [
            llm_span(
                pid,
                ago=timedelta(minutes=8),
                input='[{"role":"user","content":"The capital of Spain?"}]',
                output="Madrid.",
            )
        ],
        "literal": [llm_span(pid, ago=timedelta(minutes=9), output="I am 100%_sure.")],
        "almost-literal": [llm_span(pid, ago=timedelta(minutes=9), output="I am 100% sure.")],
        "blocked": [llm_span(pid, ago=timedelta(minutes=10), guard="block")],
        "app": app_trace(pid, ago=timedelta(minutes=11)),
    }
    modelcycle_services.recorder.writer.write([s for spans in named.values() for s in spans])
    ids = {name: spans[0].trace_id for name, spans in named.items()}

    for case, (filters, expected) in FILTER_CASES.items():
        found = search(modelcycle_services, modelcycle_admin, **filters)
        assert found == [ids[name] for name in expected], case


def test_feedback_filters(modelcycle_services: Services, modelcycle_admin: KeyPair) -> None:
    pid = modelcycle_admin.principal.project_id
    good, bad, half, none = (llm_span(pid, ago=timedelta(minutes=m)) for m in (1, 2, 3, 4))
    modelcycle_services.recorder.writer.write([good, bad, half, none])
    add = modelcycle_services.feedback.add
    add(modelcycle_admin.principal, good.trace_id, FeedbackCreate(thumbs=1))
    add(modelcycle_admin.principal, bad.trace_id, FeedbackCreate(thumbs=-1))
    add(modelcycle_admin.principal, half.trace_id, FeedbackCreate(score=0.5, label="meh"))

    def found(**filters: Any) -> set[str]:
        return set(search(modelcycle_services, modelcycle_admin, **filters))

    assert found(has_feedback=True) == {good.trace_id, bad.trace_id, half.trace_id}
    assert found(has_feedback=False) == {none.trace_id}
    assert found(min_score=0.5) == {good.trace_id, half.trace_id}
    assert found(max_score=0.5) == {bad.trace_id, half.trace_id}
    assert found(thumbs=-1) == {bad.trace_id}
    row = modelcycle_services.traces.search(
        modelcycle_admin.principal, TraceFilter(thumbs=1), now=NOW
    ).data[0]
    assert (row.feedback_count, row.feedback_score) == (1, 1.0)


def test_pages_list_every_trace_exactly_once(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    pid = modelcycle_admin.principal.project_id
    spans = [llm_span(pid, ago=timedelta(seconds=10 * i)) for i in range(1, 12)]
    # Application traces have several matching spans spread over the pages.
    for minutes in (1, 3):
        spans.extend(app_trace(pid, ago=timedelta(minutes=minutes, seconds=5)))
    same_time = [llm_span(pid, ago=timedelta(minutes=4)) for _ in range(3)]  # ties on time
    spans.extend(same_time)
    modelcycle_services.recorder.writer.write(spans)
    every = {s.trace_id for s in spans}

    seen: list[str] = []
    cursor = None
    for _ in range(20):
        page = modelcycle_services.traces.search(
            modelcycle_admin.principal,
            TraceFilter(limit=4, cursor=cursor, deployment="chat"),
            now=NOW,
        )
        assert len(page.data) <= 4
        seen.extend(row.trace_id for row in page.data)
        cursor = page.next_cursor
        if cursor is None:
            break

    assert sorted(seen) == sorted(every)
    assert len(seen) == len(set(seen))


def test_time_range_defaults_to_the_last_day_and_bad_ranges_and_cursors_are_refused(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    pid = modelcycle_admin.principal.project_id
    recent = llm_span(pid, ago=timedelta(hours=1))
    old = llm_span(pid, ago=timedelta(hours=30))
    modelcycle_services.recorder.writer.write([recent, old])

    assert search(modelcycle_services, modelcycle_admin) == [recent.trace_id]
    assert search(modelcycle_services, modelcycle_admin, start=NOW - timedelta(days=2)) == [
        recent.trace_id,
        old.trace_id,
    ]
    assert search(modelcycle_services, modelcycle_admin, end=NOW - timedelta(hours=29)) == [
        old.trace_id
    ]
    with pytest.raises(InvalidInput) as refused:
        search(modelcycle_services, modelcycle_admin, start=NOW + timedelta(hours=1))
    assert refused.value.param == "end"
    with pytest.raises(InvalidInput) as refused:
        search(modelcycle_services, modelcycle_admin, cursor="not-a-cursor")
    assert refused.value.param == "cursor"
    with pytest.raises(ValueError, match="end must be after start"):
        TraceFilter(start=NOW, end=NOW - timedelta(seconds=1))


def test_a_trace_in_full_is_in_tree_order_and_private_to_its_project(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    pid = modelcycle_admin.principal.project_id
    spans = app_trace(pid)
    root, retriever, first, second = spans
    # A gateway span under an application span that was never sent is a root too.
    orphan = llm_span(
        pid, trace=root.trace_id, parent_span_id="feedfeedfeedfeed", ago=timedelta(minutes=4)
    )
    modelcycle_services.recorder.writer.write([second, orphan, first, root, retriever])

    trace = modelcycle_services.traces.get(modelcycle_admin.principal, root.trace_id)

    order = [(span.span_id, span.depth) for span in trace.spans]
    assert order == [
        (root.span_id, 0),
        (retriever.span_id, 1),
        (first.span_id, 1),
        (second.span_id, 1),
        (orphan.span_id, 0),
    ]
    assert trace.spans[2].error_message == "upstream timed out"
    assert trace.spans[0].input == "How do refunds work?"
    outsider = make_key(modelcycle_services, Role.ADMIN, make_project(modelcycle_services))
    with pytest.raises(NotFound):
        modelcycle_services.traces.get(outsider.principal, root.trace_id)
    with pytest.raises(NotFound):
        modelcycle_services.traces.get(modelcycle_admin.principal, trace_id())
    assert search(modelcycle_services, outsider) == []


def test_reading_traces_needs_viewer(modelcycle_services: Services) -> None:
    viewer = make_key(modelcycle_services, Role.VIEWER)
    app = make_key(modelcycle_services, Role.APP)
    assert search(modelcycle_services, viewer) == []
    with pytest.raises(PermissionDenied):
        search(modelcycle_services, app)
    with pytest.raises(PermissionDenied):
        modelcycle_services.traces.rollups(app.principal, RollupQuery(), now=NOW)


def test_rollup_percentiles_match_numpy_within_the_histogram_error(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    pid = modelcycle_admin.principal.project_id
    rng = random.Random(3)
    spans = []
    for i in range(600):
        canary = i % 4 == 0
        spans.append(
            llm_span(
                pid,
                ago=timedelta(minutes=10, seconds=-i),  # 10 minutes of traffic
                latency_ms=rng.lognormvariate(5.5 if canary else 5.0, 0.5),
                ttft_ms=rng.uniform(20, 80),
                version=2 if canary else 1,
                route="canary" if canary else "primary",
                status="error" if i % 10 == 0 else "ok",
                cost=0.001,
                cache_hit=i % 20 == 0,
            )
        )
    modelcycle_services.recorder.writer.write(spans)

    result = modelcycle_services.traces.rollups(
        modelcycle_admin.principal, RollupQuery(group_by="version", step=60), now=NOW
    )

    assert result.step_s == 60
    assert [(s.deployment, s.model, s.version) for s in result.series] == [
        ("chat", "chat-model", 1),
        ("chat", "chat-model", 2),
    ]
    for series in result.series:
        mine = [s for s in spans if s.version == series.version]
        latencies = np.array([s.duration_ms for s in mine])
        summary = series.summary
        assert summary.requests == len(mine)
        assert summary.errors == sum(s.status == "error" for s in mine)
        assert summary.cache_hits == sum(s.cache_hit for s in mine)
        assert summary.input_tokens == 10 * len(mine)
        assert summary.cost == pytest.approx(0.001 * len(mine))
        assert summary.latency_mean_ms == pytest.approx(latencies.mean())
        for q, got in ((50, summary.latency_p50_ms), (95, summary.latency_p95_ms)):
            assert got == pytest.approx(np.percentile(latencies, q), rel=HISTOGRAM_ERROR)
        assert summary.latency_p99_ms == pytest.approx(
            np.percentile(latencies, 99),
            rel=2 * HISTOGRAM_ERROR,  # few samples in the tail
        )
        ttfts = np.array([s.ttft_ms for s in mine])
        assert summary.ttft_p50_ms == pytest.approx(np.percentile(ttfts, 50), rel=HISTOGRAM_ERROR)
        # One point per minute with traffic; they add up to the summary.
        assert len(series.points.time) == 10
        assert sum(series.points.requests) == len(mine)
        assert series.points.time == sorted(series.points.time)
    assert result.summary.requests == 600
    assert result.summary.error_rate == pytest.approx(0.1)


def test_rollup_buckets_groups_and_filters(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    pid = modelcycle_admin.principal.project_id
    spans = [
        llm_span(pid, ago=timedelta(minutes=m), deployment=d, route=r)
        for m in range(1, 21)
        for d, r in (("chat", "primary"), ("chat", "canary"), ("support", "primary"))
    ]
    modelcycle_services.recorder.writer.write(spans)

    def rollups(**query: Any) -> Any:
        return modelcycle_services.traces.rollups(
            modelcycle_admin.principal, RollupQuery(**query), now=NOW
        )

    total = rollups(group_by="none", step=300, start=NOW - timedelta(minutes=20))
    assert [s.deployment for s in total.series] == [None]
    assert sum(total.series[0].points.requests) == 60
    assert all(t.minute % 5 == 0 and t.second == 0 for t in total.series[0].points.time)
    by_route = rollups(group_by="route")
    assert [(s.deployment, s.route, s.summary.requests) for s in by_route.series] == [
        ("chat", "canary", 20),
        ("chat", "primary", 20),
        ("support", "primary", 20),
    ]
    only = rollups(deployment="support")
    assert [(s.deployment, s.summary.requests) for s in only.series] == [("support", 20)]
    assert only.summary.requests == 20
    empty = rollups(deployment="nothing-here")
    assert (empty.series, empty.summary.requests, empty.summary.latency_p50_ms) == ([], 0, None)
    assert rollups().step_s == 300  # a day: at most 360 buckets
    assert rollups(start=NOW - timedelta(hours=6)).step_s == 60
    assert rollups(start=NOW - timedelta(days=7)).step_s == 3600
    with pytest.raises(InvalidInput) as refused:
        rollups(start=NOW - timedelta(days=30), step=60)
    assert refused.value.param == "step"


def test_rollups_see_every_change_to_hours_read_before(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    # Parsed hours are kept between queries; any later write to them must show.
    pid = modelcycle_admin.principal.project_id
    writer = modelcycle_services.recorder.writer
    late = llm_span(pid, ago=timedelta(minutes=1))
    writer.write([llm_span(pid, ago=timedelta(minutes=50)), late])

    def summary() -> tuple[int, int, float | None]:
        result = modelcycle_services.traces.rollups(
            modelcycle_admin.principal, RollupQuery(group_by="none"), now=NOW
        )
        return (result.summary.requests, result.summary.feedback_count, result.summary.cost)

    assert summary() == (2, 0, 0.0)
    writer.write([llm_span(pid, ago=timedelta(minutes=50, seconds=-10), cost=0.5)])
    assert summary() == (3, 0, 0.5)  # an earlier minute of an hour already read
    writer.write([llm_span(pid, ago=timedelta(hours=3))])
    assert summary() == (4, 0, 0.5)  # an hour not read before
    modelcycle_services.feedback.add(
        modelcycle_admin.principal, late.trace_id, FeedbackCreate(score=0.5)
    )
    assert summary() == (4, 1, 0.5)
    other = make_project(modelcycle_services)
    outsider = make_key(modelcycle_services, Role.ADMIN, other)
    writer.write([llm_span(outsider.principal.project_id, ago=timedelta(minutes=50))])
    assert summary() == (4, 1, 0.5)  # another project's rows are not ours
