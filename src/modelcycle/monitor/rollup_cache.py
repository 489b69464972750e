"""Hours of rollup rows kept parsed between dashboard queries, exact by construction.

Reading a day of one-minute rollups is dominated by fetching ~20,000 rows and
parsing their JSON histograms. Rollup rows are only ever added or incremented
(``requests`` grows with every span folded in, ``feedback_count`` with every
scored feedback; nothing is deleted), so the triple ``(rows, sum(requests),
sum(feedback_count))`` of an hour changes whenever anything in that hour does.
A query reads that stamp for every hour of its range (one aggregate over the
index, no JSON) and fetches only the hours whose stamp differs from the cached
block: a refreshed dashboard re-reads the current hour, not the day.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Text,
    cast,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from modelcycle.monitor import histogram
from modelcycle.store.tables import SpanRollupRow

HOUR = 3_600
COUNTERS = (
    "requests",
    "errors",
    "latency_sum_ms",
    "ttft_count",
    "ttft_sum_ms",
    "input_tokens",
    "output_tokens",
    "cost",
    "cache_hits",
    "feedback_count",
    "feedback_sum",
)
"""The additive columns of a rollup row, in the order of ``Block.counters``."""
_REQUESTS, _FEEDBACK = COUNTERS.index("requests"), COUNTERS.index("feedback_count")

STAMPS_PER_QUERY = 400
"""Hours per stamp query (SQLite allows 500 parts in a compound SELECT)."""

Stamp = tuple[int, int, int]
"""Rows, sum of ``requests`` and sum of ``feedback_count`` of one hour."""
MAX_ROWS = 100_000
"""Rollup rows kept at most (about 60 MB): days of one-minute rollups of a busy project."""


@dataclass(frozen=True, slots=True)
class Block:
    """The rollup rows of one project and hour, column by column."""

    stamp: Stamp
    minutes: NDArray[np.int64]
    """Each row's minute in seconds since the epoch."""
    deployment: NDArray[np.object_]
    model: NDArray[np.object_]
    version: NDArray[np.int64]
    route: NDArray[np.object_]
    counters: NDArray[np.float64]
    """One row per rollup row, one column per ``rollups.COUNTERS`` entry."""
    histograms: NDArray[np.int32]
    """The latency histogram, then the TTFT histogram, of each row."""

    def __len__(self) -> int:
        return len(self.minutes)


class RollupBlocks:
    """Parsed hours of rollups per project, least recently used dropped first."""

    def __init__(self, max_rows: int = MAX_ROWS):
        self.max_rows = max_rows
        self._blocks: OrderedDict[tuple[int, int], Block] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()

    def get(self, project_id: int, hour: int, stamp: Stamp) -> Block | None:
        """The cached block of ``hour`` (epoch hours) if it is still at ``stamp``."""
        with self._lock:
            block = self._blocks.get((project_id, hour))
            if block is None or block.stamp != stamp:
                return None
            self._blocks.move_to_end((project_id, hour))
            return block

    def put(self, project_id: int, hour: int, block: Block) -> None:
        """Keep ``block`` (replacing an older one of the same hour)."""
        with self._lock:
            old = self._blocks.pop((project_id, hour), None)
            self._rows += len(block) - (len(old) if old is not None else 0)
            self._blocks[(project_id, hour)] = block
            while self._rows > self.max_rows and len(self._blocks) > 1:
                _, dropped = self._blocks.popitem(last=False)
                self._rows -= len(dropped)

    def __len__(self) -> int:
        return len(self._blocks)


def read_hours(
    session: Session, project_id: int, start: datetime, end: datetime, blocks: RollupBlocks
) -> Block:
    """Every rollup row of the project in the whole hours around ``[start, end)``."""
    first = math.floor(start.timestamp() / HOUR)
    last = math.ceil(end.timestamp() / HOUR)
    stamps = _stamps(session, project_id, first, last)
    found: dict[int, Block] = {}
    stale: list[int] = []
    for hour, stamp in stamps.items():
        block = blocks.get(project_id, hour, stamp)
        if block is None:
            stale.append(hour)
        else:
            found[hour] = block
    if stale:
        for hour, block in _fetch(session, project_id, min(stale), max(stale) + 1).items():
            blocks.put(project_id, hour, block)
            found[hour] = block
    return _concat([found[hour] for hour in sorted(found)])


def _at(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * HOUR, UTC)


def _in_hours(project_id: int, first: int, last: int) -> list[ColumnElement[bool]]:
    table = SpanRollupRow
    return [table.project_id == project_id, table.minute >= _at(first), table.minute < _at(last)]


def _epoch_seconds(session: Session) -> ColumnElement[int]:
    # Computed by the database: converting thousands of datetimes in Python costs more.
    if session.get_bind().dialect.name == "sqlite":
        return cast(func.strftime("%s", SpanRollupRow.minute), Integer)
    return cast(func.extract("epoch", SpanRollupRow.minute), BigInteger)


def _stamps(session: Session, project_id: int, first: int, last: int) -> dict[int, Stamp]:
    """Each hour's stamp: aggregates over index ranges, no JSON read."""
    table = SpanRollupRow
    found: dict[int, Stamp] = {}
    # One range aggregate per hour, sent as one UNION ALL: each walks its slice of the
    # (project_id, minute, ...) index in order, where a GROUP BY on the hour would sort.
    for chunk in range(first, last, STAMPS_PER_QUERY):
        hours = range(chunk, min(last, chunk + STAMPS_PER_QUERY))
        parts = [
            select(
                literal(hour, BigInteger),
                func.count(),
                func.sum(table.requests),
                func.sum(table.feedback_count),
            ).where(*_in_hours(project_id, hour, hour + 1))
            for hour in hours
        ]
        for hour, n, requests, judged in session.execute(union_all(*parts)):
            if n:
                found[int(hour)] = (int(n), int(requests or 0), int(judged or 0))
    return found


def _histograms(texts: Sequence[str]) -> NDArray[np.int32]:
    """Many JSON histograms parsed by one C call (not one parse and list per row)."""
    if not texts:
        return np.zeros((0, histogram.SIZE), dtype=np.int32)
    flat = np.fromstring(  # text mode (sep=","), not the deprecated binary one
        ",".join(texts).replace("[", "").replace("]", ""), dtype=np.int32, sep=","
    )
    if flat.size == len(texts) * histogram.SIZE:
        return flat.reshape(len(texts), histogram.SIZE)
    # Histograms of another length (none are written today): pad or cut each.
    parsed: list[list[int]] = [orjson.loads(t) for t in texts]
    size = histogram.SIZE
    return np.array([(h + [0] * size)[:size] for h in parsed], dtype=np.int32)


def _fetch(session: Session, project_id: int, first: int, last: int) -> dict[int, Block]:
    """The rows of hours ``[first, last)``, parsed, one block per hour."""
    table = SpanRollupRow
    # Core, not ORM, execution: plain tuples, without building ORM result rows.
    rows = (
        session.connection()
        .execute(
            select(
                _epoch_seconds(session),
                table.deployment,
                table.model,
                table.version,
                table.route,
                *(getattr(table, name) for name in COUNTERS),
                cast(table.latency_hist, Text),
                cast(table.ttft_hist, Text),
            ).where(*_in_hours(project_id, first, last))
        )
        .all()
    )
    if not rows:
        return {}
    columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True))
    everything = Block(
        stamp=(0, 0, 0),
        minutes=np.array(columns[0], dtype=np.int64),
        deployment=np.array(columns[1], dtype=object),
        model=np.array(columns[2], dtype=object),
        version=np.array(columns[3], dtype=np.int64),
        route=np.array(columns[4], dtype=object),
        counters=np.array(columns[5:-2], dtype=np.float64).T.copy(),
        histograms=np.hstack([_histograms(columns[-2]), _histograms(columns[-1])]),
    )
    hours = everything.minutes // HOUR
    order = np.argsort(hours, kind="stable")
    found: dict[int, Block] = {}
    bounds = np.flatnonzero(np.diff(hours[order])) + 1
    for part in np.split(order, bounds):
        found[int(hours[part[0]])] = _take(everything, part)
    return found


def _take(block: Block, rows: NDArray[np.intp]) -> Block:
    counters = block.counters[rows]
    stamp = (len(rows), int(counters[:, _REQUESTS].sum()), int(counters[:, _FEEDBACK].sum()))
    return Block(
        stamp=stamp,
        minutes=block.minutes[rows],
        deployment=block.deployment[rows],
        model=block.model[rows],
        version=block.version[rows],
        route=block.route[rows],
        counters=counters,
        histograms=block.histograms[rows],
    )


def _concat(parts: list[Block]) -> Block:
    if not parts:
        return Block(
            stamp=(0, 0, 0),
            minutes=np.zeros(0, dtype=np.int64),
            deployment=np.zeros(0, dtype=object),
            model=np.zeros(0, dtype=object),
            version=np.zeros(0, dtype=np.int64),
            route=np.zeros(0, dtype=object),
            counters=np.zeros((0, len(COUNTERS))),
            histograms=np.zeros((0, 2 * histogram.SIZE), dtype=np.int32),
        )
    if len(parts) == 1:
        return parts[0]
    return Block(
        stamp=(0, 0, 0),
        minutes=np.concatenate([p.minutes for p in parts]),
        deployment=np.concatenate([p.deployment for p in parts]),
        model=np.concatenate([p.model for p in parts]),
        version=np.concatenate([p.version for p in parts]),
        route=np.concatenate([p.route for p in parts]),
        counters=np.concatenate([p.counters for p in parts]),
        histograms=np.concatenate([p.histograms for p in parts]),
    )
