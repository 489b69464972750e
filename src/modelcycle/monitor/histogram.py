"""Fixed log-spaced latency buckets, so rollups of any time range give percentiles.

Bucket ``i`` counts values in ``(BOUNDS[i-1], BOUNDS[i]]`` milliseconds; the
last bucket is everything above the last bound. Bounds grow by 25%, so a
percentile read from merged buckets is within about 12% of the exact one —
the trade every Prometheus-style histogram makes for constant-size rollups.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

GROWTH = 1.25
FIRST_MS = 0.5
BOUNDS: tuple[float, ...] = tuple(FIRST_MS * GROWTH**i for i in range(61))
"""Upper bounds in ms: 0.5 ms .. about 311 s."""
SIZE = len(BOUNDS) + 1


def empty() -> list[int]:
    """A histogram with no values."""
    return [0] * SIZE


def bucket(value_ms: float) -> int:
    """The bucket ``value_ms`` falls in."""
    return bisect.bisect_left(BOUNDS, value_ms)


def add(histogram: list[int], value_ms: float) -> None:
    """Count one value."""
    histogram[bucket(value_ms)] += 1


def merge(histograms: Iterable[Sequence[int]]) -> list[int]:
    """The bucket-wise sum (shorter or missing histograms count as zeros)."""
    total = empty()
    for histogram in histograms:
        for i, n in enumerate(histogram[:SIZE]):
            total[i] += n
    return total


def quantile(histogram: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1), interpolated inside its bucket; ``None`` when empty."""
    count = sum(histogram)
    if count == 0:
        return None
    rank = q * count
    seen = 0
    for i, n in enumerate(histogram):
        if n and seen + n >= rank:
            low = BOUNDS[i - 1] if i > 0 else 0.0
            high = BOUNDS[i] if i < len(BOUNDS) else BOUNDS[-1] * GROWTH
            return low + (high - low) * max(0.0, rank - seen) / n
        seen += n
    return BOUNDS[-1]
