"""Dashboard queries over 1,000,000 synthetic traces in SQLite: the 200 ms p95 goal.

Builds (once; cached under the temp dir, keyed by ``DATA_VERSION`` and the size)
a SQLite file holding ``--traces`` traces over the 24 hours before a fixed
instant: 90% single-span gateway requests, 10% application traces of three
spans (chain -> retriever, llm), over 5 deployments with a primary and a canary
version each, 5,000 users, realistic statuses, guard outcomes, latencies and
texts, plus feedback on 2% of the traces. Spans go through ``SpanWriter`` in
time-ordered batches, so the rollups are the writer's own.

Then it times each dashboard query ``--runs`` times through the services the
API calls (``Traces.search``, ``Traces.get``, ``Traces.rollups``) and prints
p50/p95 and whether p95 is within the 200 ms goal.

    .venv/bin/python benchmarks/monitor_queries.py [--traces 1000000] [--runs 30] [--rebuild]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event, func, insert, select, text

from modelcycle.access import Principal
from modelcycle.monitor import SpanRecord, SpanWriter
from modelcycle.monitor.queries import Traces
from modelcycle.monitor.trace_schemas import RollupQuery, TraceFilter
from modelcycle.monitor.writer import RollupDelta, minute_of
from modelcycle.store import Store
from modelcycle.store.tables import Base, FeedbackRow, ProjectRow, SpanRow
from modelcycle.types import Role

DATA_VERSION = 1
"""Bump when the generated data changes, so cached files are rebuilt."""
GOAL_MS = 200.0
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
"""The synthetic day is the 24 hours before this instant."""
PROJECT = 1
DEPLOYMENTS = [  # name, model, share of traffic, kind
    ("chat", "chat-llm", 0.40, "llm"),
    ("support", "support-bot", 0.25, "llm"),
    ("summarize", "summarizer", 0.15, "llm"),
    ("code", "coder", 0.10, "llm"),
    ("embed", "minilm", 0.10, "embedding"),
]
WORDS = [
    "order",
    "account",
    "invoice",
    "shipping",
    "password",
    "delivery",
    "product",
    "warranty",
    "subscription",
    "payment",
    "discount",
    "address",
    "email",
    "update",
    "cancel",
    "return",
    "support",
    "question",
    "answer",
    "help",
    "please",
    "thanks",
    "issue",
    "problem",
    "error",
    "login",
    "device",
    "app",
    "feature",
    "price",
    "plan",
    "upgrade",
]
COMMON_TERM = "refund"
"""In about 1% of inputs: a typical support search."""
RARE_TERM = "chargeback"
"""In about 0.01% of inputs."""
BATCH = 20_000


def principal() -> Principal:
    return Principal(
        key_id=1,
        key_name="bench",
        prefix="bench000",
        project_id=PROJECT,
        project="default",
        role=Role.ADMIN,
        is_root=True,
        kind="key",
    )


def _text(rng: random.Random, words: int) -> str:
    chosen = rng.choices(WORDS, k=words)
    roll = rng.random()
    if roll < 0.01:
        chosen.insert(rng.randrange(len(chosen)), COMMON_TERM)
    if roll < 0.0001:
        chosen.insert(rng.randrange(len(chosen)), RARE_TERM)
    return " ".join(chosen)


def _gateway_span(rng: random.Random, trace_id: str, span_id: str, start: datetime) -> SpanRecord:
    name, model, _share, kind = rng.choices(DEPLOYMENTS, weights=[d[2] for d in DEPLOYMENTS])[0]
    roll = rng.random()
    route = "canary" if roll < 0.10 else "fallback" if roll < 0.11 else "primary"
    version = {"primary": 3, "canary": 4, "fallback": 2}[route]
    status = rng.choices(["ok", "error", "cancelled"], weights=[97.5, 2.0, 0.5])[0]
    latency = rng.lognormvariate(6.0, 0.6) if kind == "llm" else rng.lognormvariate(3.0, 0.4)
    stream = kind == "llm" and rng.random() < 0.6
    user = int(rng.paretovariate(1.2)) % 5_000
    prompt = _text(rng, rng.randint(10, 60))
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": prompt},
    ]
    return SpanRecord(
        project_id=PROJECT,
        trace_id=trace_id,
        span_id=span_id,
        name=f"chat.completions {name}",
        kind=kind,
        source="gateway",
        start_time=start,
        end_time=start + timedelta(milliseconds=latency),
        duration_ms=latency,
        ttft_ms=latency * rng.uniform(0.1, 0.4) if stream else None,
        status=status,
        status_code=200 if status == "ok" else 502,
        error_type="upstream_error" if status == "error" else None,
        request_id=trace_id,
        endpoint="embeddings" if kind == "embedding" else "chat.completions",
        deployment=name,
        model=model,
        version=version,
        route=route,
        key_id=rng.randint(1, 20),
        user_id=f"user-{user}",
        session_id=f"session-{user}-{rng.randint(0, 9)}",
        input_tokens=len(prompt.split()) + 8,
        output_tokens=0 if kind == "embedding" else rng.randint(5, 300),
        cost=rng.uniform(0.00001, 0.002),
        cache_hit=rng.random() < 0.05,
        stream=stream,
        finish_reason="stop",
        guard=rng.choices(["allow", "flag", "redact", "block"], weights=[95, 3, 1.5, 0.5])[0],
        params={"temperature": 0.2, "max_tokens": 256},
        input=orjson.dumps(messages).decode(),
        output=None if kind == "embedding" else _text(rng, rng.randint(5, 40)),
    )


def _trace(rng: random.Random, index: int, start: datetime) -> list[SpanRecord]:
    trace_id = f"{index:032x}"
    llm = _gateway_span(rng, trace_id, f"{index:013x}001", start)
    if rng.random() >= 0.10:
        return [llm]
    # An application trace: chain -> retriever, then the model call.
    root_id, retriever_id = f"{index:013x}000", f"{index:013x}002"
    llm.parent_span_id, llm.source = root_id, "sdk"
    retrieval = 40.0
    llm.start_time += timedelta(milliseconds=retrieval)
    llm.end_time += timedelta(milliseconds=retrieval)
    total = retrieval + llm.duration_ms + 5
    common = {
        "project_id": PROJECT,
        "trace_id": trace_id,
        "source": "sdk",
        "user_id": llm.user_id,
        "session_id": llm.session_id,
        "status": llm.status,
    }
    root = SpanRecord(
        span_id=root_id,
        name="answer_question",
        kind="chain",
        start_time=start,
        end_time=start + timedelta(milliseconds=total),
        duration_ms=total,
        input=llm.input,
        output=llm.output,
        **common,
    )
    retriever = SpanRecord(
        span_id=retriever_id,
        parent_span_id=root_id,
        name="search_docs",
        kind="retriever",
        start_time=start,
        end_time=start + timedelta(milliseconds=retrieval),
        duration_ms=retrieval,
        **{**common, "status": "ok"},
    )
    return [root, retriever, llm]


def _big_cache(connection: Any, _record: Any) -> None:
    connection.execute("PRAGMA cache_size=-524288")  # 512 MB


def build(path: Path, traces: int) -> None:
    """Write ``traces`` synthetic traces (and their rollups and feedback) to ``path``."""
    store = Store(f"sqlite:///{path}")
    # Only for building: random inserts into the user and session indexes outgrow
    # SQLite's default 2 MB page cache and slow the load down as the file grows.
    event.listen(store.write_engine, "connect", _big_cache)
    Base.metadata.create_all(store.write_engine)
    with store.write() as session:
        session.add(ProjectRow(id=PROJECT, name="default", description="benchmark"))
    writer = SpanWriter(store)
    rng = random.Random(42)
    first = NOW - timedelta(hours=24)
    gap_ms = 24 * 3_600_000 / traces
    started = time.perf_counter()
    batch: list[SpanRecord] = []
    judged: list[SpanRecord] = []
    for index in range(traces):
        start = first + timedelta(milliseconds=index * gap_ms + rng.uniform(0, gap_ms))
        spans = _trace(rng, index, start)
        batch.extend(spans)
        if rng.random() < 0.02:
            judged.append(spans[-1])
        if len(batch) >= BATCH:
            writer.write(batch, fresh=True)  # ids made here: skip the duplicate check
            batch = []
            done = index + 1
            rate = done / (time.perf_counter() - started)
            print(f"\r  {done:,} traces ({rate:,.0f}/s)", end="", file=sys.stderr)
    writer.write(batch, fresh=True)
    print(file=sys.stderr)
    _add_feedback(store, writer, rng, judged)
    with store.write() as session:
        session.execute(text("ANALYZE"))
    store.dispose()


def _add_feedback(
    store: Store, writer: SpanWriter, rng: random.Random, judged: list[SpanRecord]
) -> None:
    rows, deltas = [], {}
    for span in judged:
        score = rng.choice([0.0, 1.0, 1.0, 1.0, rng.random()])
        rows.append(
            {
                "project_id": PROJECT,
                "trace_id": span.trace_id,
                "span_id": span.span_id,
                "deployment": span.deployment,
                "model": span.model,
                "version": span.version,
                "score": score,
                "thumbs": 1 if score == 1.0 else -1 if score == 0.0 else None,
                "label": "wrong-answer" if score == 0.0 else None,
                "actor": "key:bench000",
                "created_at": span.end_time + timedelta(seconds=30),
            }
        )
        key = (
            PROJECT,
            minute_of(span.start_time),
            span.deployment or "",
            span.model or "",
            span.version or 0,
            span.route or "",
        )
        delta = deltas.setdefault(key, RollupDelta())
        delta.feedback_count += 1
        delta.feedback_sum += score
    with store.write() as session:
        session.execute(insert(FeedbackRow), rows)
        writer.fold(session, deltas)


def timed(runs: int, call: Callable[[int], Any]) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each run (CPU time shows what a shared machine hides)."""
    call(0)  # warm the page cache and statement caches
    wall, cpu = [], []
    for run in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        call(run)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    return wall, cpu


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    path = (
        Path(tempfile.gettempdir()) / f"modelcycle-bench-monitor-v{DATA_VERSION}-{args.traces}.db"
    )
    if args.rebuild or not path.exists():
        path.unlink(missing_ok=True)
        partial = path.with_suffix(".building")
        partial.unlink(missing_ok=True)
        print(f"building {args.traces:,} traces in {path} (cached for later runs)", file=sys.stderr)
        started = time.perf_counter()
        build(partial, args.traces)
        partial.rename(path)
        print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    store = Store(f"sqlite:///{path}")
    traces = Traces(store)
    who = principal()
    with store.read() as session:
        spans = session.execute(select(func.count()).select_from(SpanRow)).scalar_one()
        rollup_rows = session.execute(text("SELECT count(*) FROM span_rollups")).scalar_one()
        multi = (
            session.execute(
                select(SpanRow.trace_id).where(SpanRow.parent_span_id.is_not(None)).limit(200)
            )
            .scalars()
            .all()
        )
    size_mb = path.stat().st_size / 1e6
    print(
        f"{args.traces:,} traces, {spans:,} spans, {rollup_rows:,} rollup rows, {size_mb:,.0f} MB"
    )
    rng = random.Random(7)
    ids = [f"{rng.randrange(args.traces):032x}" for _ in range(args.runs + 1)]
    deployments = [d[0] for d in DEPLOYMENTS]

    def search(**filters: Any) -> Callable[[int], Any]:
        return lambda run: traces.search(who, TraceFilter(**filters), now=NOW)

    def rollups(**query: Any) -> Callable[[int], Any]:
        return lambda run: traces.rollups(who, RollupQuery(**query), now=NOW)

    second_page = traces.search(who, TraceFilter(deployment="chat", status="error"), now=NOW)

    def cold_rollups(run: int) -> Any:
        # A new service has nothing cached: every hour's rows and histograms are fetched.
        return Traces(store).rollups(who, RollupQuery(group_by="deployment"), now=NOW)

    # The goal's rows are what a dashboard asks: a day at the default step (5 minutes, a
    # chart's worth of points), refreshed. The rows after them are reported, not judged.
    queries: list[tuple[str, Callable[[int], Any], bool]] = [
        ("rollups 24h by deployment", rollups(group_by="deployment"), True),
        ("rollups 24h by version", rollups(group_by="version"), True),
        ("rollups 24h, all", rollups(group_by="none"), True),
        (
            "rollups 1h by version",
            rollups(group_by="version", start=NOW - timedelta(hours=1)),
            True,
        ),
        ("search: first page, no filter", search(), True),
        (
            "search: deployment + status=error",
            lambda run: traces.search(
                who,
                TraceFilter(deployment=deployments[run % 5], status="error"),
                now=NOW,
            ),
            True,
        ),
        (
            "search: deployment + status=error, page 2",
            search(deployment="chat", status="error", cursor=second_page.next_cursor),
            True,
        ),
        (f"search: text {COMMON_TERM!r} (~1% of traces)", search(text=COMMON_TERM), True),
        (
            "search: user",
            lambda run: traces.search(who, TraceFilter(user_id=f"user-{run % 50}"), now=NOW),
            True,
        ),
        ("search: guard=block (0.5%)", search(guard="block"), True),
        ("search: feedback score <= 0.5", search(max_score=0.5), True),
        ("trace: one gateway trace", lambda run: traces.get(who, ids[run]), True),
        ("trace: one 3-span trace", lambda run: traces.get(who, multi[run % len(multi)]), True),
        ("rollups 24h by deployment, cold cache", cold_rollups, False),
        ("rollups 24h by deployment, 1-min buckets", rollups(step=60), False),
        ("rollups 24h by version, 1-min buckets", rollups(group_by="version", step=60), False),
        (f"search: text {RARE_TERM!r} (~0.01%, scans)", search(text=RARE_TERM), False),
        ("search: text absent (scans all 24 h)", search(text="no-such-word"), False),
    ]
    failed = 0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} CPUs")
    header = f"{'query':<44} {'p50 ms':>7} {'p95 ms':>7} {'cpu p50':>8} {'cpu p95':>8}"
    print(f"\n{header}  goal p95 <= {GOAL_MS:.0f} ms")
    for name, call, in_goal in queries:
        runs = args.runs if in_goal else max(5, args.runs // 3)
        wall, cpu = timed(runs, call)
        high = p95(wall)
        verdict = ("ok" if high <= GOAL_MS else "MISSED") if in_goal else "(reported)"
        failed += in_goal and high > GOAL_MS
        print(
            f"{name:<44} {statistics.median(wall):>7.1f} {high:>7.1f} "
            f"{statistics.median(cpu):>8.1f} {p95(cpu):>8.1f}  {verdict}"
        )
    store.dispose()
    print(
        f"\n{'all dashboard queries within' if not failed else 'MISSED on'} "
        f"{'the goal' if not failed else f'{failed} queries'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
