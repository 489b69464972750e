"""Admission control around each gateway request: rate limits, concurrency, cache, breakers.

A request is charged to every budget that applies, all or none (so a refused
request costs nothing):

=====================  ===========================================  =====================
scope                  configured by                                counts
=====================  ===========================================  =====================
deployment             ``limits.rpm`` / ``limits.tpm`` of the spec   all keys together
key on the deployment  ``limits.key_rpm`` / ``limits.key_tpm``      each API key
project                ``project_rpm`` / ``project_tpm`` settings   every deployment
key                    ``key_rpm`` / ``key_tpm`` settings           all deployments
=====================  ===========================================  =====================

(``project_limits`` replaces the four settings for a named project.) Token
budgets are charged the prompt's estimated size (4 characters a token) up
front and reconciled with the real usage when the request ends; a cache hit
costs a request but no tokens. A refusal is OpenAI's 429 ``rate_limit_error``
with ``Retry-After``; every answer carries OpenAI's ``x-ratelimit-*`` headers
for the tightest request and token budgets.

The gateway makes a ``Ticket`` per request (``Limits.admit``, no I/O), then:

1. ``Ticket.usable`` drops the versions whose circuit is open and charges the
   budgets; with Redis the same round trip also reads the cache entry of the
   first usable version, and carries earlier requests' token reconciliations;
2. ``Ticket.backend`` turns each backend call into a cached answer, or the
   backend within its concurrency slot (filling the cache when it answers);
3. ``Ticket.close`` settles tokens, frees the slot and records the outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from modelcycle.access import Principal
from modelcycle.backends import Backend, Completion, Usage
from modelcycle.deploy import Deployment, ResolvedVersion
from modelcycle.errors import MissingExtra, ModelcycleError, UpstreamError
from modelcycle.gateway.breaker import Breakers, CircuitOpen, VersionKey
from modelcycle.gateway.concurrency import Gates
from modelcycle.gateway.ratelimit_gcra import EPOCH, Bucket, MemoryStore, RateLimitStore
from modelcycle.gateway.ratelimit_openai import estimate_tokens, rate_headers, refusal
from modelcycle.gateway.response_cache import (
    MemoryCache,
    ReplayBackend,
    ResponseCache,
    StoringBackend,
    cache_key,
    cacheable,
    decode,
)
from modelcycle.gateway.routing import Attempt
from modelcycle.gateway.schemas import InferenceRequest
from modelcycle.settings import ProjectLimits, Settings

if TYPE_CHECKING:
    from modelcycle.gateway.cache import Resolver

CACHE_HEADER = "X-Modelcycle-Cache"
PLANS_MAX = 10_000

# A key's budgets on a deployment: requests buckets (cost 1, reused as they are)
# and token scopes (key, limit, scope) whose cost is the request's estimate.
_Plan = tuple[tuple[Bucket, ...], tuple[tuple[str, int, str], ...]]


class Limits:
    """The admission state of one gateway process (see the module docstring)."""

    def __init__(
        self,
        *,
        store: RateLimitStore | None = None,
        cache: ResponseCache | None = None,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.store: RateLimitStore = store or MemoryStore()
        self.cache: ResponseCache = cache or MemoryCache()
        self.breakers = Breakers(clock)
        self.gates = Gates()
        self.clock = clock
        self._defaults = ProjectLimits()
        self._per_project: dict[str, ProjectLimits] = {}
        if settings is not None:
            self._defaults = ProjectLimits(
                rpm=settings.project_rpm,
                tpm=settings.project_tpm,
                key_rpm=settings.key_rpm,
                key_tpm=settings.key_tpm,
            )
            self._per_project = dict(settings.project_limits)
        self._plans: dict[tuple[object, ...], _Plan] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> Limits:
        """In-process limits and cache, or Redis-backed ones when ``redis_url`` is set."""
        if not settings.redis_url:
            cache = MemoryCache(
                max_entries=settings.cache_max_entries, max_bytes=settings.cache_max_bytes
            )
            return cls(cache=cache, settings=settings, clock=clock)
        try:  # fail at start-up, not on the first request
            import redis  # noqa: F401
        except ImportError as exc:
            raise MissingExtra("redis", "redis") from exc
        from modelcycle.gateway.ratelimit_redis import RedisStore, SharedStore
        from modelcycle.gateway.shared_state import SharedRedis

        shared = RedisStore(SharedRedis(settings.redis_url, settings.redis_key_prefix))
        store = SharedStore(shared, settings.limits_on_redis_error)
        return cls(store=store, cache=shared, settings=settings, clock=clock)

    def project_limits(self, project: str) -> ProjectLimits:
        """The project-wide and per-key limits that apply in ``project``."""
        return self._per_project.get(project, self._defaults)

    async def admit(
        self, principal: Principal, deployment: Deployment, request: InferenceRequest
    ) -> Ticket:
        """The request's ticket; its budgets are charged by ``Ticket.usable``."""
        return Ticket(
            self, principal, deployment, request, self._buckets(principal, deployment, request)
        )

    def settle(self, charges: Sequence[tuple[Bucket, int]]) -> None:
        """Reconcile token budgets with real usage (batched with Redis)."""
        self.store.settle(charges, self.clock() - EPOCH)

    async def drain(self) -> None:
        """Send pending reconciliations and cache writes to Redis now."""
        await self.store.flush()
        await self.cache.flush()

    async def aclose(self) -> None:
        """Send what is pending and close Redis connections."""
        await self.drain()
        await self.store.aclose()
        await self.cache.aclose()

    def _buckets(
        self, principal: Principal, deployment: Deployment, request: InferenceRequest
    ) -> list[Bucket]:
        limits = deployment.spec.limits
        signature = (
            principal.project_id,
            principal.key_id,
            deployment.name,
            limits.rpm,
            limits.tpm,
            limits.key_rpm,
            limits.key_tpm,
        )
        plan = self._plans.get(signature)
        if plan is None:
            if len(self._plans) >= PLANS_MAX:
                self._plans = {}
            plan = self._plans[signature] = self._plan(principal, deployment)
        requests, tokens = plan
        if not tokens:
            return list(requests)
        # A prompt larger than the whole budget waits for a full bucket, then runs
        # and leaves the budget in debt, instead of being refused forever.
        estimate = estimate_tokens(request)
        charged = [
            Bucket(key, "tokens", tpm, min(estimate, tpm), scope) for key, tpm, scope in tokens
        ]
        return [*requests, *charged]

    def _plan(self, principal: Principal, deployment: Deployment) -> _Plan:
        name, limits = deployment.name, deployment.spec.limits
        project = self.project_limits(principal.project)
        pid, key = principal.project_id, principal.key_id
        # The project id is a Redis hash tag: one request's buckets share a cluster slot.
        scopes = (
            (f"{{{pid}}}:d:{name}", f"deployment '{name}'", limits.rpm, limits.tpm),
            (
                f"{{{pid}}}:dk:{name}:{key}",
                f"this API key on deployment '{name}'",
                limits.key_rpm,
                limits.key_tpm,
            ),
            (f"{{{pid}}}:p", f"project '{principal.project}'", project.rpm, project.tpm),
            (f"{{{pid}}}:k:{key}", "this API key", project.key_rpm, project.key_tpm),
        )
        requests = tuple(
            Bucket(prefix + ":r", "requests", rpm, 1, scope)
            for prefix, scope, rpm, _ in scopes
            if rpm is not None
        )
        tokens = tuple(
            (prefix + ":t", tpm, scope) for prefix, scope, _, tpm in scopes if tpm is not None
        )
        return requests, tokens


class Ticket:
    """One request's admission: its charges, slot, cache use and breaker bookkeeping."""

    def __init__(
        self,
        limits: Limits,
        principal: Principal,
        deployment: Deployment,
        request: InferenceRequest,
        buckets: Sequence[Bucket],
    ):
        self._limits, self._principal = limits, principal
        self._deployment, self._request = deployment, request
        self._buckets = buckets
        self._tokens: list[Bucket] = []
        self.headers: dict[str, str] = {}
        """Headers of the answer: ``x-ratelimit-*`` and ``X-Modelcycle-Cache``."""
        self.cache_hit = False
        self._prefetched: tuple[str, Completion | None] | None = None
        self._slot: tuple[int, str] | None = None
        self._tried: VersionKey | None = None
        self._probe: VersionKey | None = None
        self._closed = False

    def _key(self, version: ResolvedVersion) -> VersionKey:
        return (self._principal.project_id, version.model, version.version)

    def _cache_key(self, version: ResolvedVersion) -> str | None:
        if self._deployment.spec.cache.ttl_s <= 0 or not cacheable(self._request, version):
            return None
        pid = self._principal.project_id
        return cache_key(pid, self._deployment.name, version, self._request)

    async def usable(self, attempts: Sequence[Attempt], resolver: Resolver) -> list[Attempt]:
        """The attempts to make, after charging the request's budgets.

        Versions whose circuit is open are dropped; when the chosen route is
        out, the deployment's other routes come before the fallbacks. Raises
        ``RateLimited`` (429) when a budget is spent and ``CircuitOpen`` (503)
        when every candidate is out.
        """
        usable, first = await self._routable(attempts, resolver)
        if not self._buckets:
            return usable
        limits = self._limits
        fetch = None
        if limits.store.fetches and usable and self._deployment.spec.cache.ttl_s > 0:
            version = first or await _resolved(resolver, self._principal, usable[0])
            fetch = self._cache_key(version) if version is not None else None
        verdict, payload = await limits.store.acquire(
            self._buckets, limits.clock() - EPOCH, limits.cache.location(fetch) if fetch else None
        )
        self.headers.update(rate_headers(verdict.states))
        if not verdict.allowed:
            raise refusal(verdict, self.headers)
        self._tokens = [b for b in self._buckets if b.kind == "tokens"]
        if fetch is not None:
            self._prefetched = (fetch, decode(payload, limits.clock()) if payload else None)
        return usable

    async def _routable(
        self, attempts: Sequence[Attempt], resolver: Resolver
    ) -> tuple[list[Attempt], ResolvedVersion | None]:
        """The attempts without open circuits, and the first one's version when resolved."""
        policy = self._deployment.spec.breaker
        if not policy.enabled:
            return list(attempts), None
        breakers, pid = self._limits.breakers, self._principal.project_id
        candidates, routes = list(attempts), self._deployment.spec.routes
        usable: list[Attempt] = []
        first: ResolvedVersion | None = None
        wait: float | None = None
        for index, attempt in enumerate(candidates):
            try:
                version = await resolver.version(pid, attempt.target)
            except UpstreamError:
                usable.append(attempt)  # it fails in the attempt itself, as before
                continue
            key = self._key(version)
            if breakers.allows(key, policy):
                first = first if usable else version
                usable.append(attempt)
                continue
            later = breakers.retry_after(key, policy)
            wait = later if wait is None else min(wait, later)
            if index == 0 and attempt.kind in ("primary", "canary"):
                candidates[1:1] = [
                    Attempt(route.target, "primary" if n == 0 else "canary")
                    for n, route in enumerate(routes)
                    if route.weight > 0 and route.target != attempt.target
                ]
        if not usable and wait is not None:
            raise CircuitOpen(self._deployment.name, wait)
        return usable, first

    async def backend(self, version: ResolvedVersion, backend: Backend) -> Backend:
        """What to call for ``version``: a cached answer, or ``backend`` within its slot."""
        spec, limits = self._deployment.spec, self._limits
        key = self._cache_key(version)
        if spec.cache.ttl_s > 0:
            self.headers[CACHE_HEADER] = "miss"
        if key is not None:
            prefetched = self._prefetched
            if prefetched is not None and prefetched[0] == key:
                found = prefetched[1]
            else:
                found = await limits.cache.get(key, limits.clock())
            if found is not None:
                self.cache_hit = True
                self.headers[CACHE_HEADER] = "hit"
                return ReplayBackend(found)
        if spec.limits.max_concurrency is not None and self._slot is None:
            self._slot = await limits.gates.enter(
                self._principal.project_id,
                self._deployment.name,
                spec.limits.max_concurrency,
                spec.limits.queue_timeout_s,
            )
        version_key = self._key(version)
        if spec.breaker.enabled:
            if not limits.breakers.begin(version_key, spec.breaker):
                raise CircuitOpen(self._deployment.name, 1.0)  # another probe got there first
            if limits.breakers.state(version_key) == "half_open":
                self._probe = version_key
        self._tried = version_key
        if key is None:
            return backend
        return StoringBackend(backend, limits.cache, key, spec.cache.ttl_s, limits.clock())

    def failed(self, exc: ModelcycleError) -> None:
        """The attempt just made failed: count it against the version's circuit."""
        key, self._tried = self._tried, None
        if key is None or not isinstance(exc, UpstreamError) or isinstance(exc, CircuitOpen):
            return
        if exc.code == "target_unavailable":
            return  # a configuration problem, not a failing version
        self._limits.breakers.failure(key, self._deployment.spec.breaker)
        if self._probe == key:
            self._probe = None

    def close(
        self,
        outcome: BaseException | None,
        usage: Usage | None,
        served: ResolvedVersion | None,
    ) -> None:
        """The request ended: settle tokens, free the slot, record the served call."""
        if self._closed:
            return
        self._closed = True
        limits, policy = self._limits, self._deployment.spec.breaker
        if served is not None and not self.cache_hit:
            key = self._key(served)
            if outcome is None:
                limits.breakers.success(key, policy)
            elif isinstance(outcome, UpstreamError) and not isinstance(outcome, CircuitOpen):
                limits.breakers.failure(key, policy)  # a stream that broke after it began
            if self._probe == key:
                self._probe = None
        if self._probe is not None:
            limits.breakers.release(self._probe)
        if self._slot is not None:
            limits.gates.leave(self._slot, self._deployment.spec.limits.max_concurrency or 1)
            self._slot = None
        if self._tokens:
            used = 0 if self.cache_hit or usage is None else usage.total_tokens
            charges = [(b, used - b.cost) for b in self._tokens if used != b.cost]
            if charges:
                limits.settle(charges)


async def _resolved(
    resolver: Resolver, principal: Principal, attempt: Attempt
) -> ResolvedVersion | None:
    try:
        return await resolver.version(principal.project_id, attempt.target)
    except UpstreamError:
        return None
