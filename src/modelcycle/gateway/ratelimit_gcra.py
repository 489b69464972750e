"""Requests and tokens per minute with GCRA, and the in-process store of its state.

GCRA (the generic cell rate algorithm, a token bucket kept as one number) stores
per bucket its *theoretical arrival time* ``tat``: the moment the bucket would
be full again. With ``limit`` units per ``PERIOD_S`` each unit moves ``tat`` by
``PERIOD_S / limit``; a request of ``cost`` units is admitted when the new
``tat`` is at most ``PERIOD_S`` ahead of now. So a full minute's budget may be
spent at once and then refills continuously: there is no window edge at which
a second full budget becomes available (the flaw of fixed windows), and the
state is one float per bucket, which makes the shared Redis version a short
Lua script (``ratelimit_redis.py``) running the same arithmetic.

Times are seconds since ``EPOCH`` rather than since 1970 so that sums of small
intervals keep sub-microsecond precision in a double.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

PERIOD_S = 60.0
"""Every limit is per minute."""

EPOCH = 1_700_000_000.0
"""Subtracted from wall-clock time (see the module docstring)."""

EPS = 1e-6
"""Rounding slack of the comparisons, in seconds."""

Kind = Literal["requests", "tokens"]


@dataclass(frozen=True, slots=True)
class Bucket:
    """One budget a request draws from: ``cost`` units of ``limit`` per minute."""

    key: str
    """Storage key, unique per scope and kind."""
    kind: Kind
    limit: int
    cost: int
    scope: str
    """For people: ``deployment 'chat'``, ``this API key``..."""


@dataclass(frozen=True, slots=True)
class BucketState:
    """A bucket after a decision: what is left and when it is full again."""

    bucket: Bucket
    remaining: int
    reset_s: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one admission over several buckets (all or none are charged)."""

    allowed: bool
    states: tuple[BucketState, ...]
    retry_after_s: float
    """How long until the request would fit (0 when allowed)."""
    denied: Bucket | None = None
    """The bucket that refused it (the one that needs the longest wait)."""


class RateLimitStore(Protocol):
    """Where bucket state lives: this process, or Redis for every gateway process."""

    fetches: bool
    """Whether ``acquire`` can read a cache entry in the same round trip."""

    async def acquire(
        self, buckets: Sequence[Bucket], now: float, fetch: str | None = None
    ) -> tuple[Verdict, bytes | None]:
        """Charge every bucket its cost if all of them can afford it, atomically.

        With ``fetch`` (stores that ``fetches`` only), also the value stored
        under that key, read in the same round trip.
        """
        ...

    def settle(self, charges: Sequence[tuple[Bucket, int]], now: float) -> None:
        """Add ``delta`` units to buckets (negative: refund), e.g. real usage vs estimate.

        Applied at once in process; sent with the next round trip to Redis.
        """
        ...

    async def flush(self) -> None:
        """Send pending settlements now."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def interval(limit: int) -> float:
    """Seconds one unit of a ``limit``-per-minute budget takes to refill."""
    return PERIOD_S / limit


def decide(
    buckets: Sequence[Bucket], tats: Sequence[float | None], now: float
) -> tuple[Verdict, list[float]]:
    """The verdict for ``buckets`` whose stored ``tats`` are given (``None``: full bucket).

    Pure arithmetic, the same as the Redis script. Also returns each bucket's
    ``tat`` after the decision, which the caller stores when it allows.
    """
    retry, denied = 0.0, None
    base: list[float] = []
    after: list[float] = []
    for bucket, tat in zip(buckets, tats, strict=True):
        start = tat if tat is not None and tat > now else now
        end = start + bucket.cost * PERIOD_S / bucket.limit
        over = end - now - PERIOD_S
        if over > EPS and over > retry:
            retry, denied = over, bucket
        base.append(start)
        after.append(end)
    allowed = denied is None
    kept = after if allowed else base
    states = tuple(state(bucket, tat, now) for bucket, tat in zip(buckets, kept, strict=True))
    return Verdict(allowed, states, 0.0 if allowed else retry, denied), kept


def state(bucket: Bucket, tat: float, now: float) -> BucketState:
    """What is left of ``bucket`` when its ``tat`` is as given."""
    ahead = tat - now if tat > now else 0.0
    remaining = math.floor((PERIOD_S - ahead) * bucket.limit / PERIOD_S + EPS)
    return BucketState(bucket, remaining if remaining > 0 else 0, ahead)


def adjusted(tat: float | None, limit: int, delta: int, now: float) -> float:
    """``tat`` after ``delta`` more units (a refund never makes a bucket fuller than full)."""
    start = now if tat is None or tat < now else tat
    return max(now, start + delta * interval(limit))


class MemoryStore:
    """Bucket state in this process: exact, shared by the requests of one process only."""

    SWEEP_AT = 50_000
    """Past this many buckets, full ones (a ``tat`` in the past) are dropped."""

    fetches = False

    def __init__(self) -> None:
        self._tats: dict[str, float] = {}

    async def acquire(
        self, buckets: Sequence[Bucket], now: float, fetch: str | None = None
    ) -> tuple[Verdict, bytes | None]:
        """Charge every bucket or none (one event loop: nothing runs in between)."""
        return self.acquire_now(buckets, now), None

    def acquire_now(self, buckets: Sequence[Bucket], now: float) -> Verdict:
        """``acquire`` without the coroutine (the Redis store falls back to this)."""
        tats = self._tats
        verdict, kept = decide(buckets, [tats.get(bucket.key) for bucket in buckets], now)
        if verdict.allowed:
            for bucket, tat in zip(buckets, kept, strict=True):
                tats[bucket.key] = tat
            if len(tats) > self.SWEEP_AT:
                self._sweep(now)
        return verdict

    def settle(self, charges: Sequence[tuple[Bucket, int]], now: float) -> None:
        """Add or refund units."""
        for bucket, delta in charges:
            tat = adjusted(self._tats.get(bucket.key), bucket.limit, delta, now)
            if tat > now:
                self._tats[bucket.key] = tat
            else:
                self._tats.pop(bucket.key, None)

    async def flush(self) -> None:
        """Nothing is pending."""

    async def aclose(self) -> None:
        """Nothing to release."""

    def _sweep(self, now: float) -> None:
        self._tats = {key: tat for key, tat in self._tats.items() if tat > now}
