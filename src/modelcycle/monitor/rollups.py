"""Rollup series: per-minute ``span_rollups`` rows summed into buckets and groups.

A dashboard over 24 hours reads ~1,440 rows per deployment, version and route;
their counters and latency histograms are summed with numpy (one matrix per
column) and the percentiles are read off the merged histograms, vectorised,
with exactly the interpolation of ``histogram.quantile``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from modelcycle.errors import InvalidInput
from modelcycle.monitor import histogram
from modelcycle.monitor.rollup_cache import COUNTERS, Block, RollupBlocks, read_hours
from modelcycle.monitor.trace_schemas import (
    GroupBy,
    RollupPoints,
    RollupQuery,
    Rollups,
    RollupSeries,
    RollupStats,
)
from modelcycle.monitor.writer import minute_of

AUTO_STEPS = (60, 300, 900, 3_600, 86_400)
AUTO_BUCKETS = 360
"""The default step is the smallest of ``AUTO_STEPS`` giving at most this many buckets: a
chart's worth of points (24 hours in 5-minute buckets, 6 hours in minutes), as dashboards
choose them; an explicit ``step`` gives up to ``MAX_BUCKETS``."""
MAX_BUCKETS = 20_160
"""An explicit step may give at most this many buckets (two weeks of minutes)."""

GROUP_KEYS: dict[GroupBy, tuple[str, ...]] = {
    GroupBy.NONE: (),
    GroupBy.DEPLOYMENT: ("deployment",),
    GroupBy.VERSION: ("deployment", "model", "version"),
    GroupBy.ROUTE: ("deployment", "route"),
}
_C = {name: index for index, name in enumerate(COUNTERS)}

_LOWS = np.array((0.0, *histogram.BOUNDS))
_HIGHS = np.array((*histogram.BOUNDS, histogram.BOUNDS[-1] * histogram.GROWTH))

Matrix = NDArray[np.float64]


def choose_step(start: datetime, end: datetime, step: int | None) -> int:
    """The bucket width: ``step`` if it gives at most ``MAX_BUCKETS``, else an automatic one."""
    seconds = (end - start).total_seconds()
    if step is None:
        return next((s for s in AUTO_STEPS if seconds / s <= AUTO_BUCKETS), AUTO_STEPS[-1])
    buckets = math.ceil(seconds / step)
    if buckets > MAX_BUCKETS:
        raise InvalidInput(
            f"step {step} s gives {buckets} buckets over this range (at most {MAX_BUCKETS}); "
            "use a larger step or a shorter range",
            param="step",
        )
    return step


def quantiles(hists: NDArray[np.int64] | Matrix, *qs: float) -> list[Matrix]:
    """``histogram.quantile(row, q)`` of every row for each ``q`` (``nan`` for empty rows)."""
    if hists.shape[0] == 0:
        return [np.zeros(0) for _ in qs]
    count = hists.sum(axis=1)
    cumulative = np.cumsum(hists, axis=1)
    nonzero = hists > 0
    rows = np.arange(hists.shape[0])
    found = []
    for q in qs:
        rank = q * count
        index = (nonzero & (cumulative >= rank[:, None])).argmax(axis=1)
        n = hists[rows, index]
        seen = cumulative[rows, index] - n
        low, high = _LOWS[index], _HIGHS[index]
        with np.errstate(invalid="ignore", divide="ignore"):
            value: Matrix = low + (high - low) * np.maximum(0.0, rank - seen) / n
        value[count == 0] = np.nan
        found.append(value)
    return found


def _sum_by(labels: NDArray[np.int64], size: int, *matrices: NDArray[Any]) -> list[NDArray[Any]]:
    """Row sums of each matrix per label ``0..size-1`` (zeros where a label has no row)."""
    from scipy import sparse  # lazy: keeps scipy out of CLI start-up

    # A sparse 0/1 matrix (label x row) times each matrix: one pass in C, no sorting.
    n = len(labels)
    indicator = sparse.csr_matrix(
        (np.ones(n, dtype=np.int64), (labels, np.arange(n))), shape=(size, n)
    )
    return [np.asarray(indicator @ m, dtype=m.dtype) for m in matrices]


def _split(data: Matrix) -> tuple[Matrix, Matrix, Matrix]:
    """Counters, latency histograms and TTFT histograms of combined rows."""
    size = histogram.SIZE
    return data[:, : len(COUNTERS)], data[:, len(COUNTERS) : -size], data[:, -size:]


def _optional(values: Matrix) -> list[float | None]:
    """``values`` as a list, ``nan`` (no data) as ``None``."""
    boxed = values.astype(object)
    boxed[np.isnan(values)] = None
    found: list[float | None] = boxed.tolist()
    return found


def _integers(values: Matrix) -> list[int]:
    return [int(v) for v in values.tolist()]


def _columns(
    counters: Matrix, latency: NDArray[np.int64] | Matrix, ttft: NDArray[np.int64] | Matrix
) -> dict[str, list[Any]]:
    """Statistics of each row of the summed matrices, as ``RollupPoints`` columns."""

    def column(name: str) -> Matrix:
        return counters[:, _C[name]]

    with np.errstate(invalid="ignore", divide="ignore"):
        error_rate = column("errors") / column("requests")
        mean = column("latency_sum_ms") / column("requests")
        score = column("feedback_sum") / column("feedback_count")
    p50, p95, p99 = quantiles(latency, 0.5, 0.95, 0.99)
    ttft50, ttft95 = quantiles(ttft, 0.5, 0.95)
    return {
        "requests": _integers(column("requests")),
        "errors": _integers(column("errors")),
        "error_rate": _optional(error_rate),
        "latency_mean_ms": _optional(mean),
        "latency_p50_ms": _optional(p50),
        "latency_p95_ms": _optional(p95),
        "latency_p99_ms": _optional(p99),
        "ttft_p50_ms": _optional(ttft50),
        "ttft_p95_ms": _optional(ttft95),
        "input_tokens": _integers(column("input_tokens")),
        "output_tokens": _integers(column("output_tokens")),
        "cost": column("cost").tolist(),
        "cache_hits": _integers(column("cache_hits")),
        "feedback_count": _integers(column("feedback_count")),
        "feedback_score": _optional(score),
    }


def _points(times: list[datetime], columns: dict[str, list[Any]], cut: slice) -> RollupPoints:
    """The rows ``cut`` of ``columns`` (computed once for every series)."""
    return RollupPoints(time=times[cut], **{name: values[cut] for name, values in columns.items()})


def _stats(
    times: list[datetime],
    counters: Matrix,
    latency: NDArray[np.int64] | Matrix,
    ttft: NDArray[np.int64] | Matrix,
) -> list[RollupStats]:
    """Statistics of each row, as one ``RollupStats`` per row (for the few summaries)."""
    columns = _columns(counters, latency, ttft)
    return _points(times, columns, slice(None)).rows()


@dataclass(frozen=True, slots=True)
class _Rows:
    """The rollup rows read, column by column."""

    minutes: NDArray[np.int64]
    """Each row's minute, in seconds since the epoch."""
    groups: dict[tuple[Any, ...], int]
    group_of: NDArray[np.int64]
    data: Matrix
    """The counters, then the latency and TTFT histograms, of each row (see ``_split``)."""


def _select(block: Block, query: RollupQuery, start: datetime, end: datetime) -> Block:
    """The rows of ``block`` in ``[start, end)`` (whole minutes) that match the filters."""
    keep = (block.minutes >= int(minute_of(start).timestamp())) & (block.minutes < end.timestamp())
    for name in ("deployment", "model", "version", "route"):
        value = getattr(query, name)
        if value is not None:
            keep &= getattr(block, name) == value
    rows = np.flatnonzero(keep)
    return Block(
        stamp=block.stamp,
        minutes=block.minutes[rows],
        deployment=block.deployment[rows],
        model=block.model[rows],
        version=block.version[rows],
        route=block.route[rows],
        counters=block.counters[rows],
        histograms=block.histograms[rows],
    )


def _rows(block: Block, keys: tuple[str, ...]) -> _Rows:
    n = len(block)
    columns = [getattr(block, key).tolist() for key in keys]
    labels: list[tuple[Any, ...]] = list(zip(*columns, strict=True)) if keys else [()] * n
    groups = {key: index for index, key in enumerate(dict.fromkeys(labels))}
    return _Rows(
        minutes=block.minutes,
        groups=groups,
        group_of=np.fromiter(map(groups.__getitem__, labels), dtype=np.int64, count=n),
        data=np.hstack([block.counters, block.histograms], dtype=np.float64),
    )


def _series(rows: _Rows, keys: tuple[str, ...], start: datetime, step: int) -> list[RollupSeries]:
    """One series per group: its non-empty buckets and its totals, ordered by group."""
    if not rows.groups:
        return []
    origin = math.floor(start.timestamp() / step) * step
    bucket = (rows.minutes - origin) // step
    width = int(bucket.max()) + 1
    # One matrix, one pass: every additive column summed per cell = group * width + bucket;
    # a group's cells are then contiguous and in time order, and its totals their sum.
    groups = len(rows.groups)
    data = rows.data
    label = rows.group_of * width + bucket
    [summed] = _sum_by(label, groups * width, data)
    cells = np.flatnonzero(np.bincount(label, minlength=groups * width))
    columns = _columns(*_split(summed[cells]))
    s_counters, s_latency, s_ttft = _split(summed.reshape(groups, width, -1).sum(axis=1))
    times = [datetime.fromtimestamp(origin + int(b) * step, UTC) for b in cells % width]
    bounds = np.searchsorted(cells // width, np.arange(groups + 1)).tolist()
    summaries = _stats([start] * len(rows.groups), s_counters, s_latency, s_ttft)
    series = []
    for key, index in sorted(rows.groups.items()):
        labels = dict(zip(keys, key, strict=True))
        cut = slice(bounds[index], bounds[index + 1])
        series.append(
            RollupSeries(
                deployment=labels.get("deployment") or None,
                model=labels.get("model") or None,
                version=labels.get("version") or None,
                route=labels.get("route") or None,
                points=_points(times, columns, cut),
                summary=summaries[index],
            )
        )
    return series


def read(
    session: Session,
    project_id: int,
    query: RollupQuery,
    start: datetime,
    end: datetime,
    step: int,
    blocks: RollupBlocks,
) -> Rollups:
    """Rollups of ``[start, end)`` (widened to whole minutes) in ``step``-second buckets."""
    keys = GROUP_KEYS[query.group_by]
    every = read_hours(session, project_id, minute_of(start), end, blocks)
    rows = _rows(_select(every, query, start, end), keys)
    total = _stats([start], *_split(rows.data.sum(axis=0, keepdims=True)))[0]
    return Rollups(
        start=start,
        end=end,
        step_s=step,
        group_by=query.group_by,
        series=_series(rows, keys, start, step),
        summary=total,
    )
