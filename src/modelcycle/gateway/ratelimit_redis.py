"""Rate limits and response cache in Redis, shared by every gateway process: one round trip.

A request's admission (all of its GCRA buckets charged, or none) and the read
of the cache entry it may be answered from travel in one call of one Lua
script (``ratelimit_lua``), together with what earlier requests of this
process left pending: token reconciliations and cache writes. So a request
costs one round trip, not four; what is pending is otherwise sent within
``FLUSH_AFTER_S``. Calls are group-committed: while one call of a project is
in flight, the admissions that arrive wait and go together in the next, so
under load one round trip serves many requests, and with no load nothing
waits. Keys carry the project id as a hash tag (``{12}``) so that one call's
keys live in one Redis Cluster slot; only work of the same project rides along.

While Redis is unreachable ``SharedStore`` follows ``on_error`` (the
``limits_on_redis_error`` setting): ``local`` enforces the limits in this
process alone, ``open`` admits every request, ``closed`` answers 503. The
cache misses and drops its writes. A request never fails with a 500 because
of Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Literal

from modelcycle.backends import Completion
from modelcycle.errors import StoreError
from modelcycle.gateway.ratelimit_gcra import Bucket, MemoryStore, Verdict, decide, state
from modelcycle.gateway.ratelimit_lua import SCRIPT, Admission, answers, arguments
from modelcycle.gateway.response_cache import decode, encode
from modelcycle.gateway.shared_state import SharedRedis, SharedUnavailable

log = logging.getLogger(__name__)

OnError = Literal["local", "open", "closed"]

FLUSH_AFTER_S = 0.05
"""Longest pending work waits for a request of its project to ride along with."""

MAX_RIDERS = 64
"""Most admissions, or pending writes, one round trip carries."""


class LimiterUnavailable(StoreError):
    """Redis is down and ``limits_on_redis_error`` is ``closed``."""

    def __init__(self) -> None:
        super().__init__(
            "the shared rate limiter (Redis) is unreachable; retry shortly",
            code="rate_limiter_unavailable",
            headers={"Retry-After": "1"},
        )


def _tag(key: str) -> str:
    """The hash tag a key starts with (``{12}`` of ``{12}:d:chat:r``)."""
    return key[: key.find("}") + 1]


class RedisStore:
    """Buckets and cache entries in Redis (see the module docstring).

    Implements both ``RateLimitStore`` and ``ResponseCache``.
    """

    fetches = True

    def __init__(self, redis: SharedRedis):
        self._redis = redis
        self._limits, self._cache = f"{redis.prefix}rl:", f"{redis.prefix}cache:"
        self._script_of: dict[int, Any] = {}
        # Pending work by project tag: reconciliations (bucket key -> bucket, delta)
        # and cache writes (Redis key -> payload, ttl in ms).
        self._settle: dict[str, dict[str, tuple[Bucket, int]]] = {}
        self._writes: dict[str, dict[str, tuple[bytes, int]]] = {}
        # Admissions waiting for the call of their project in flight to return.
        self._waiting: dict[str, list[tuple[Admission, asyncio.Future[Any]]]] = {}
        self._pumping: set[str] = set()
        self._flusher: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_now = 0.0

    # -- rate limits -------------------------------------------------------------------

    async def acquire(
        self, buckets: Sequence[Bucket], now: float, fetch: str | None = None
    ) -> tuple[Verdict, bytes | None]:
        """Charge all buckets or none in one round trip; ``SharedUnavailable`` when down."""
        self._last_now = max(self._last_now, now)
        tag = _tag(buckets[0].key)
        keys = [self._limits + bucket.key for bucket in buckets]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tag, []).append((Admission(buckets, keys, fetch), future))
        if tag not in self._pumping:
            self._pumping.add(tag)
            self._spawn(self._pump(tag))
        answer, now = await future
        if answer.allowed:
            states = tuple(state(b, t, now) for b, t in zip(buckets, answer.tats, strict=True))
            return Verdict(True, states, 0.0), answer.value
        # The same arithmetic on the tats the script read names the bucket.
        return decide(buckets, answer.tats, now)[0], answer.value

    def settle(self, charges: Sequence[tuple[Bucket, int]], now: float) -> None:
        """Queue reconciliations for the next round trip of their project (or a flush)."""
        self._last_now = max(self._last_now, now)
        self._queue(charges)
        self._schedule()

    # -- response cache ----------------------------------------------------------------

    async def get(self, key: str, now: float) -> Completion | None:
        """The live answer under ``key``; ``None`` on a miss or when Redis is down."""
        waiting = self._writes.get(_tag(key), {}).get(self._cache + key)
        if waiting is not None:  # written by this process, not sent yet
            return decode(waiting[0], now)
        try:
            payload = await self._redis.run(lambda client: client.get(self._cache + key))
        except SharedUnavailable:
            return None
        return None if payload is None else decode(payload, now)

    async def put(self, key: str, completion: Completion, ttl_s: float, now: float) -> None:
        """Queue the entry for the next round trip of its project (or a flush)."""
        writes = self._writes.setdefault(_tag(key), {})
        if len(writes) < MAX_RIDERS * 16:  # a bound, should Redis fall far behind
            writes[self._cache + key] = (
                encode(completion, now + ttl_s),
                max(1, round(ttl_s * 1000)),
            )
        self._schedule()

    def location(self, key: str) -> str:
        """The Redis key of cache entry ``key``."""
        return self._cache + key

    # -- sending -------------------------------------------------------------------------

    async def flush(self) -> None:
        """Send everything pending now."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        await self._send_pending()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Close the Redis connections."""
        await self._redis.aclose()

    async def _pump(self, tag: str) -> None:
        """Send the admissions of ``tag`` that are waiting, until none are."""
        try:
            while self._waiting.get(tag):
                waiting = self._waiting.pop(tag)
                batch, rest = waiting[:MAX_RIDERS], waiting[MAX_RIDERS:]
                if rest:
                    self._waiting[tag] = rest
                settle = self._settle.pop(tag, {})
                writes = self._writes.pop(tag, {})
                admissions = [admission for admission, _ in batch]
                now = self._last_now
                try:
                    reply = await self._run(now, admissions, list(settle.values()), writes)
                    results: list[Any] = [(found, now) for found in answers(reply, admissions)]
                except asyncio.CancelledError:
                    for _, future in waiting:
                        future.cancel()
                    raise
                except Exception as exc:  # each waiting request gets it (SharedStore decides)
                    if isinstance(exc, SharedUnavailable):
                        self._queue(settle.values())  # not applied: later (writes are dropped)
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue  # its request was cancelled meanwhile
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._pumping.discard(tag)

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self,
        now: float,
        admissions: Sequence[Admission],
        settle: Sequence[tuple[Bucket, int]],
        writes: dict[str, tuple[bytes, int]],
    ) -> Any:
        pending = [(self._limits + bucket.key, bucket.limit, delta) for bucket, delta in settle]
        keys, args = arguments(now, admissions, pending, writes)

        async def call(client: Any) -> Any:
            script = self._script_of.get(id(client))
            if script is None:
                script = self._script_of[id(client)] = client.register_script(SCRIPT)
            return await script(keys=keys, args=args)

        return await self._redis.run(call)

    def _queue(self, charges: Any) -> None:
        for bucket, delta in charges:
            pending = self._settle.setdefault(_tag(bucket.key), {})
            found = pending.get(bucket.key)
            pending[bucket.key] = (bucket, delta + (found[1] if found else 0))

    def _schedule(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self._on_timer)

    def _on_timer(self) -> None:
        self._flusher = None
        self._spawn(self._send_pending())

    async def _send_pending(self) -> None:
        for tag in {*self._settle, *self._writes}:
            settle = list(self._settle.pop(tag, {}).values())
            writes = self._writes.pop(tag, {})
            items = list(writes.items())
            try:
                for start in range(0, max(len(items), 1), MAX_RIDERS):
                    chunk = dict(items[start : start + MAX_RIDERS])
                    await self._run(self._last_now, (), settle if start == 0 else (), chunk)
            except SharedUnavailable:  # the outage itself is logged by SharedRedis
                log.debug("Redis is down: %d reconciliation(s) of %s dropped", len(settle), tag)


class SharedStore:
    """``RedisStore`` as a rate-limit store, with the configured behaviour while Redis is down."""

    fetches = True

    def __init__(self, redis: RedisStore, on_error: OnError):
        self._redis = redis
        self._local = MemoryStore()
        self.on_error: OnError = on_error
        self._down = False

    async def acquire(
        self, buckets: Sequence[Bucket], now: float, fetch: str | None = None
    ) -> tuple[Verdict, bytes | None]:
        """Redis's verdict; while it is down, ``on_error`` decides (and nothing is read)."""
        try:
            found = await self._redis.acquire(buckets, now, fetch)
        except SharedUnavailable:
            self._down = True
            if self.on_error == "local":
                return self._local.acquire_now(buckets, now), None
            if self.on_error == "open":
                return Verdict(True, (), 0.0), None
            raise LimiterUnavailable() from None
        self._down = False
        return found

    def settle(self, charges: Sequence[tuple[Bucket, int]], now: float) -> None:
        """Reconcile in Redis, or locally while it is down and the limits are ``local``."""
        if self._down and self.on_error == "local":
            self._local.settle(charges, now)
        else:
            self._redis.settle(charges, now)

    async def flush(self) -> None:
        """Send pending work now."""
        await self._redis.flush()

    async def aclose(self) -> None:
        """Close the Redis connections."""
        await self._redis.aclose()
