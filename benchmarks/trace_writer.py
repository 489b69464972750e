"""Trace writer throughput: batched ``SpanWriter`` vs one INSERT + commit per trace, one run.

Issue 4 asks the writer to sustain at least 20,000 traces/s into SQLite and to report the
figure for PostgreSQL. Each trace is one gateway span with realistic content (about 500
characters of input and of output, parameters, metadata), spread over a few deployments,
versions and minutes so the per-minute rollups are folded as in production. The baseline
stores the same spans the way a naive recorder would: one INSERT and one commit per trace,
into the same table. Two batched figures: "gateway" is the recorder's path for spans the
gateway made (fresh random ids, no duplicate check), "checked" the path of spans that may
arrive twice (OTLP, SDK, spill replay: each batch is checked against the stored ids first).
Rounds alternate between the three so that drift on a shared machine favours none.

``--redact`` adds a fourth figure, "redacted": the gateway path with the storage
redaction the recorder applies before writing (the built-in ``pii`` and ``secrets``
detectors; one span in ten carries an e-mail address, one in fifty an API key), and
prints its ratio to the unredacted path measured in the same rounds.

    .venv/bin/python benchmarks/trace_writer.py [--traces 40000] [--rounds 3] [--redact]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, delete, insert, text

from modelcycle.monitor import SpanRecord, SpanWriter
from modelcycle.monitor.redaction import SpanRedactor
from modelcycle.store import Store
from modelcycle.store.migrate import upgrade
from modelcycle.store.tables import SpanRollupRow, SpanRow

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GOAL = 20_000.0
CPU_RATES: list[float] = []
"""Gateway-path traces per CPU-second of this process, per SQLite round."""
TEXT = (
    "the model answered a question about invoices refunds shipping delays and the customer "
    "asked again for a summary of the account with every order placed since last spring"
)
WORDS = TEXT.split()


def sentence(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    length = 0
    while length < chars:
        words.append(rng.choice(WORDS))
        length += len(words[-1]) + 1
    return " ".join(words)


def personal(i: int) -> str:
    """What one span in ten (an e-mail address) and one in fifty (an API key) carry."""
    found = f" write to user{i}@example.com" if i % 10 == 0 else ""
    if i % 50 == 0:
        found += f" my key is sk-proj-{uuid.UUID(int=i).hex}{uuid.UUID(int=i + 1).hex}"
    return found


def storage_redactor() -> SpanRedactor:
    """The recorder's redaction, as services builds it, for a project without raw text."""
    from modelcycle.guard.builtin import BuiltinDetectors
    from modelcycle.guard.engine import DetectorRegistry
    from modelcycle.guard.storage import storage_redactor as build

    registry = DetectorRegistry(BuiltinDetectors().modelcycle_guard_detectors())
    return SpanRedactor(build(registry), lambda _project: False)


def redacted(store: Store, spans: list[SpanRecord], batch: int, redactor: SpanRedactor) -> float:
    """Traces/s through redaction then ``SpanWriter.write``, as the recorder's thread does."""
    writer = SpanWriter(store)
    started = time.perf_counter()
    for i in range(0, len(spans), batch):
        part = spans[i : i + batch]
        redactor.apply(part)
        assert writer.write(part, fresh=True) == len(part)
    return len(spans) / (time.perf_counter() - started)


def synthetic_spans(count: int, seed: int) -> list[SpanRecord]:
    """``count`` gateway spans: 3 deployments x 2 versions, over ten minutes."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(minutes=10)
    spans = []
    for i in range(count):
        begin = start + timedelta(milliseconds=i * 600_000 / count)
        latency = rng.lognormvariate(5, 0.6)
        deployment = f"support-{i % 3}"
        spans.append(
            SpanRecord(
                project_id=1,
                trace_id=uuid.uuid4().hex,
                span_id=uuid.uuid4().hex[:16],
                name=f"chat.completions {deployment}",
                kind="llm",
                source="gateway",
                start_time=begin,
                end_time=begin + timedelta(milliseconds=latency),
                duration_ms=latency,
                ttft_ms=latency / 4 if i % 4 == 0 else None,
                status="error" if i % 50 == 0 else "ok",
                status_code=200,
                request_id=uuid.uuid4().hex,
                endpoint="chat.completions",
                deployment=deployment,
                model="support-bot",
                version=1 + i % 2,
                route="canary" if i % 10 == 0 else "primary",
                key_id=7,
                user_id=f"user-{rng.randrange(500)}",
                session_id=f"session-{rng.randrange(2000)}",
                input_tokens=rng.randrange(50, 200),
                output_tokens=rng.randrange(20, 150),
                stream=i % 4 == 0,
                finish_reason="stop",
                params={"temperature": 0.2, "max_tokens": 256},
                input=f'[{{"role": "user", "content": "{sentence(rng, 500)}{personal(i)}"}}]',
                output=sentence(rng, 500),
                attributes={"feature": "search", "tier": i % 3},
            )
        )
    return spans


def empty(store: Store) -> None:
    with store.write() as session:
        session.execute(delete(SpanRow))
        session.execute(delete(SpanRollupRow))


def batched(store: Store, spans: list[SpanRecord], batch: int, *, fresh: bool) -> float:
    """Traces/s through ``SpanWriter.write`` in batches of ``batch`` (the recorder's way).

    ``fresh``: spans the gateway made (the recorder skips the duplicate check for them);
    otherwise each batch is first checked against the stored ids, as OTLP spans are.
    """
    writer = SpanWriter(store)
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(spans), batch):
        part = spans[i : i + batch]
        assert writer.write(part, fresh=fresh) == len(part)
    if (
        fresh and store.is_sqlite
    ):  # this process does all of SQLite's work: its CPU time is the writer's cost
        CPU_RATES.append(len(spans) / (time.process_time() - cpu))
    return len(spans) / (time.perf_counter() - started)


def single_rows(store: Store, spans: list[SpanRecord]) -> float:
    """Traces/s with one INSERT and one commit per trace, into the same table."""
    statement = insert(SpanRow.__table__)
    started = time.perf_counter()
    for span in spans:
        with store.write() as session:
            session.execute(statement, span.row())
    return len(spans) / (time.perf_counter() - started)


def measure(
    store: Store,
    traces: int,
    baseline_traces: int,
    rounds: int,
    batch: int,
    redactor: SpanRedactor | None = None,
) -> dict[str, float]:
    upgrade(store)
    runs: dict[str, list[float]] = {"batched": [], "checked": [], "single": [], "redacted": []}
    for round_ in range(rounds):
        empty(store)
        spans = synthetic_spans(traces, round_)
        runs["batched"].append(batched(store, spans, batch, fresh=True))
        if redactor is not None:  # fresh copies: redaction rewrites spans in place
            empty(store)
            fresh = synthetic_spans(traces, round_)
            runs["redacted"].append(redacted(store, fresh, batch, redactor))
        empty(store)
        runs["checked"].append(batched(store, spans, batch, fresh=False))
        empty(store)
        runs["single"].append(single_rows(store, synthetic_spans(baseline_traces, round_)))
    empty(store)
    return {name: statistics.median(values) for name, values in runs.items() if values}


@contextmanager
def sqlite_store() -> Iterator[Store]:
    home = Path(tempfile.mkdtemp(prefix="bench-traces-"))
    store = Store(f"sqlite:///{home / 'modelcycle.db'}")
    try:
        yield store
    finally:
        store.dispose()


@contextmanager
def postgres_store() -> Iterator[Store | None]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(POSTGRES)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # report and run SQLite only
        print(f"PostgreSQL unavailable ({type(exc).__name__}); SQLite only")
        yield None
        return
    store = Store(f"{POSTGRES}?options=-csearch_path%3D{schema}")
    try:
        yield store
    finally:
        store.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def load() -> str:
    """The 1-minute load average and the CPU count: a busy machine lowers every figure."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def report(name: str, found: dict[str, float]) -> None:
    single = found["single"]
    print(
        f"{name:<11} {found['batched']:>9,.0f} {found['checked']:>9,.0f} {single:>9,.0f}"
        f"   {found['batched'] / single:>6.1f}x {found['checked'] / single:>6.1f}x"
    )
    if "redacted" in found:
        print(
            f"{'':<11} {found['redacted']:>9,.0f} redacted gateway traces/s: "
            f"{found['redacted'] / found['batched']:.2f}x the unredacted path"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=int, default=40_000, help="traces per batched round")
    parser.add_argument("--baseline", type=int, default=3_000, help="traces per single-row round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2_000, help="spans per transaction")
    parser.add_argument(
        "--redact", action="store_true", help="also measure the path with storage redaction"
    )
    args = parser.parse_args()
    redactor = storage_redactor() if args.redact else None

    run: Callable[[Store], dict[str, float]] = lambda store: measure(  # noqa: E731
        store, args.traces, args.baseline, args.rounds, args.batch, redactor
    )
    print(
        f"{args.traces} traces per batched round, batches of {args.batch}, median of {args.rounds}"
    )
    print(
        f"{'traces/s':<11} {'gateway':>9} {'checked':>9} {'1-row':>9}   vs 1-row (batched, checked)"
    )
    with sqlite_store() as store:
        sqlite = run(store)
    report("SQLite", sqlite)
    per_cpu = statistics.median(CPU_RATES)
    print(f"{'':<11} {per_cpu:>9,.0f} gateway traces per CPU-second (load here: {load()})")
    with postgres_store() as pg:
        if pg is not None:
            report("PostgreSQL", run(pg))
    verdict = sqlite["batched"] >= GOAL
    print(f"SQLite batched writer: {sqlite['batched']:,.0f} traces/s (goal >= {GOAL:,.0f})")
    print("PASS" if verdict else "FAIL")
    raise SystemExit(0 if verdict else 1)


if __name__ == "__main__":
    main()
