"""Writes batches of spans and folds them into the per-minute rollups, in one transaction.

Each span is stored once: spans the gateway made (fresh random ids) are
inserted directly; spans that may arrive twice (an OTLP retry, a spill file
replayed after a crash) are first checked against the stored ids, so re-sent
spans are neither stored nor counted in the rollups again. The unique index
on ``(trace_id, span_id)`` backs this up.

The writer runs on a thread of the server process, so its Python work holds
the GIL that the request path needs: on SQLite rows go to the driver's
``executemany`` as plain tuples (sqlite3 releases the GIL while it steps each
row) and the batch is converted in slices with a yield between them, so a
request never waits behind a long conversion (docs/design/monitoring.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from modelcycle.monitor import gil, histogram
from modelcycle.monitor.spans import SpanRecord, price
from modelcycle.store import Store
from modelcycle.store.tables import ModelRow, ModelVersionRow, SpanRollupRow, SpanRow

COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SpanRecord))
_VALUES = attrgetter(*COLUMNS)
_TIMES = tuple(COLUMNS.index(name) for name in ("start_time", "end_time"))
_JSON = tuple(COLUMNS.index(name) for name in ("params", "attributes"))
SLICE = 64
"""Spans converted between two GIL yields."""
ID_CHUNK = 400
"""Span ids per existence query (below every database's parameter limit)."""

RollupKey = tuple[int, datetime, str, str, int, str]
"""project_id, minute, deployment, model, version, route ("" and 0 for none)."""


@dataclass(slots=True)
class RollupDelta:
    """What one batch adds to one rollup row."""

    requests: int = 0
    errors: int = 0
    latency_sum_ms: float = 0.0
    latency_hist: list[int] = field(default_factory=histogram.empty)
    ttft_count: int = 0
    ttft_sum_ms: float = 0.0
    ttft_hist: list[int] = field(default_factory=histogram.empty)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    cache_hits: int = 0
    feedback_count: int = 0
    feedback_sum: float = 0.0

    def add(self, span: SpanRecord) -> None:
        """Count one span."""
        self.requests += 1
        self.errors += span.status == "error"
        self.latency_sum_ms += span.duration_ms
        histogram.add(self.latency_hist, span.duration_ms)
        if span.ttft_ms is not None:
            self.ttft_count += 1
            self.ttft_sum_ms += span.ttft_ms
            histogram.add(self.ttft_hist, span.ttft_ms)
        self.input_tokens += span.input_tokens
        self.output_tokens += span.output_tokens
        self.cost += span.cost or 0.0
        self.cache_hits += span.cache_hit


def minute_of(at: datetime) -> datetime:
    """The start of ``at``'s minute."""
    return at.replace(second=0, microsecond=0)


def rollup_key(span: SpanRecord) -> RollupKey:
    """The rollup row a span counts in."""
    return (
        span.project_id,
        minute_of(span.start_time),
        span.deployment or "",
        span.model or "",
        span.version or 0,
        span.route or "",
    )


class PriceTable:
    """Each version's ``metadata.pricing``, read once per version and kept."""

    def __init__(self, store: Store):
        self._store = store
        self._known: dict[tuple[int, str, int], Mapping[str, Any] | None] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Read prices again (after a version's metadata changed)."""
        with self._lock:
            self._known.clear()

    def apply(self, spans: Iterable[SpanRecord]) -> None:
        """Set ``cost`` on spans that have none and whose version has a price table."""
        for span in spans:
            if span.cost is not None or span.model is None or span.version is None:
                continue
            span.cost = price(span, self._pricing(span.project_id, span.model, span.version))

    def _pricing(self, project_id: int, model: str, version: int) -> Mapping[str, Any] | None:
        key = (project_id, model, version)
        with self._lock:
            if key in self._known:
                return self._known[key]
        with self._store.read() as session:
            meta = session.execute(
                select(ModelVersionRow.meta)
                .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
                .where(
                    ModelRow.project_id == project_id,
                    ModelRow.name == model,
                    ModelVersionRow.version == version,
                )
            ).scalar_one_or_none()
        pricing = meta.get("pricing") if isinstance(meta, dict) else None
        found = pricing if isinstance(pricing, dict) else None
        with self._lock:
            self._known[key] = found
        return found


class SpanWriter:
    """Stores batches of spans and their rollups; safe to call from one thread at a time."""

    def __init__(self, store: Store):
        self._store = store
        self.prices = PriceTable(store)
        self.holding_lock: Callable[[], AbstractContextManager[object]] = nullcontext
        """Entered around each write transaction (the trace writer child leaves its
        idle CPU class there, so that other writers never wait on a starved one)."""
        self._sqlite = store.is_sqlite
        placeholders = ", ".join("?" for _ in COLUMNS)
        # Column names come from SpanRecord's fields, never from input.
        self._sqlite_insert = (
            f"INSERT OR IGNORE INTO {SpanRow.__tablename__} "  # noqa: S608
            f"({', '.join(COLUMNS)}) VALUES ({placeholders})"
        )
        self._core_insert = postgresql.insert(SpanRow).on_conflict_do_nothing(
            index_elements=["trace_id", "span_id"]
        )
        dialect = sqlite if self._sqlite else postgresql
        self._insert_rollup = dialect.insert(SpanRollupRow).on_conflict_do_nothing()

    def write(self, spans: Sequence[SpanRecord], *, fresh: bool = False) -> int:
        """Store ``spans`` and roll them up; returns how many were new.

        ``fresh``: the caller made the span ids itself just now (the gateway), so
        none can be stored already and the duplicate check is skipped.
        """
        if not spans:
            return 0
        self.prices.apply(spans)
        rows = self._rows(spans) if self._sqlite else None
        with self.holding_lock(), self._store.write() as session:
            keep = list(range(len(spans))) if fresh else self._unseen(session, spans)
            if not keep:
                return 0
            if rows is not None:
                cursor = session.connection().connection.driver_connection
                assert cursor is not None
                cursor.executemany(self._sqlite_insert, [rows[i] for i in keep])
            else:
                session.execute(self._core_insert, [spans[i].row() for i in keep])
            deltas: dict[RollupKey, RollupDelta] = {}
            for i in keep:
                span = spans[i]
                if span.is_llm:
                    deltas.setdefault(rollup_key(span), RollupDelta()).add(span)
            self.fold(session, deltas)
        return len(keep)

    def _rows(self, spans: Sequence[SpanRecord]) -> list[tuple[Any, ...]]:
        """SQLite rows: times as SQLAlchemy stores them (naive UTC text), JSON as text."""
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(spans), SLICE):
            if start:
                gil.pause()
            for span in spans[start : start + SLICE]:
                row = list(_VALUES(span))
                for i in _TIMES:
                    row[i] = _sqlite_time(row[i])
                for i in _JSON:
                    if row[i] is not None:
                        row[i] = orjson.dumps(row[i]).decode()
                rows.append(tuple(row))
        return rows

    def _unseen(self, session: Session, spans: Sequence[SpanRecord]) -> list[int]:
        """Indexes of the spans not stored yet (and not repeated earlier in the batch).

        Looks trace ids up with a plain ``IN`` (a tuple ``IN`` makes SQLite scan
        the whole index) and compares span ids here.
        """
        ids = [(span.trace_id, span.span_id) for span in spans]
        traces = sorted({trace_id for trace_id, _ in ids})
        stored: set[tuple[str, str]] = set()
        for start in range(0, len(traces), ID_CHUNK):
            found = session.execute(
                select(SpanRow.trace_id, SpanRow.span_id).where(
                    SpanRow.trace_id.in_(traces[start : start + ID_CHUNK])
                )
            ).all()
            stored.update((row[0], row[1]) for row in found)
        keep: list[int] = []
        for i, key in enumerate(ids):
            if key not in stored:
                stored.add(key)
                keep.append(i)
        return keep

    def fold(self, session: Session, deltas: Mapping[RollupKey, RollupDelta]) -> None:
        """Add ``deltas`` to their rollup rows (created when missing), in ``session``."""
        if not deltas:
            return
        zero = histogram.empty()
        session.execute(
            self._insert_rollup,
            [
                {
                    "project_id": key[0],
                    "minute": key[1],
                    "deployment": key[2],
                    "model": key[3],
                    "version": key[4],
                    "route": key[5],
                    "latency_hist": zero,
                    "ttft_hist": zero,
                }
                for key in deltas
            ],
        )
        # The unique key's leading columns, then the rest compared here: a tuple IN
        # over all six would make SQLite scan the table.
        projects = sorted({key[0] for key in deltas})
        minutes = sorted({key[1] for key in deltas})
        query = select(SpanRollupRow).where(
            SpanRollupRow.project_id.in_(projects), SpanRollupRow.minute.in_(minutes)
        )
        if not self._store.is_sqlite:
            query = query.with_for_update()  # another process may fold the same minute
        for row in session.execute(query).scalars():
            key = (row.project_id, row.minute, row.deployment, row.model, row.version, row.route)
            delta = deltas.get(key)
            if delta is None:
                continue
            row.requests += delta.requests
            row.errors += delta.errors
            row.latency_sum_ms += delta.latency_sum_ms
            row.latency_hist = histogram.merge([row.latency_hist, delta.latency_hist])
            row.ttft_count += delta.ttft_count
            row.ttft_sum_ms += delta.ttft_sum_ms
            row.ttft_hist = histogram.merge([row.ttft_hist, delta.ttft_hist])
            row.input_tokens += delta.input_tokens
            row.output_tokens += delta.output_tokens
            row.cost += delta.cost
            row.cache_hits += delta.cache_hits
            row.feedback_count += delta.feedback_count
            row.feedback_sum += delta.feedback_sum


def _sqlite_time(value: datetime) -> str:
    """``value`` in SQLAlchemy's SQLite DATETIME text form (naive UTC, microseconds)."""
    if value.tzinfo is UTC:  # the gateway's times: drop "+00:00" (half the cost of converting)
        return value.isoformat(" ", "microseconds")[:26]
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")
