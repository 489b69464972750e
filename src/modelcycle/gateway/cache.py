"""Short-lived caches of deployments and target resolutions, cleared on every change.

The request path reads the database only on a miss. Entries expire after
``ttl_s`` (which bounds staleness when another process made the change) and the
whole cache is dropped on ``DeploymentChanged``, ``AliasMoved`` and version
archive/delete events of this process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from modelcycle import events
from modelcycle.deploy import Deployment, Deployments, ResolvedVersion, resolve_active
from modelcycle.errors import InvalidInput, NotFound, UpstreamError
from modelcycle.hookspecs import hookimpl
from modelcycle.singleflight import SingleFlight
from modelcycle.store import Store

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_ENTRIES = 10_000


class DeploymentNotFound(NotFound):
    """The ``model`` of an OpenAI request names no deployment of the key's project."""

    error_type = "invalid_request_error"

    def __init__(self, name: str):
        super().__init__(
            f"The model '{name}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )


class _TTLMap(Generic[K, V]):
    """Values read by ``load`` (in a worker thread), each served for ``ttl_s`` seconds.

    One read per key runs at a time (``SingleFlight``: the others await it), and
    an entry used in the last ``REFRESH_SHARE`` of its life is read again in the
    background while it is still served: a busy key never makes a request wait
    for the database, and nothing is served after its ``ttl_s``.
    """

    REFRESH_SHARE = 0.25

    def __init__(self, ttl_s: float, clock: Callable[[], float]):
        self.ttl_s, self._clock = ttl_s, clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._reads: SingleFlight[K, V] = SingleFlight()
        self.generation = 0

    async def get(self, key: K, load: Callable[[K], V]) -> V:
        """The value of ``key``: cached, else read (once, however many ask at a time)."""
        found = self._entries.get(key)
        if found is not None:
            expires, value = found
            left = expires - self._clock()
            if left > 0:
                if left < self.ttl_s * self.REFRESH_SHARE and not self._reads.running(key):
                    self._read(key, load)  # in the background; this request goes on
                return value
        return await asyncio.shield(self._read(key, load))

    def _read(self, key: K, load: Callable[[K], V]) -> asyncio.Task[V]:
        generation = self.generation
        return self._reads.start(
            key, lambda: load(key), then=lambda value: self.put(key, value, generation)
        )

    def put(self, key: K, value: V, generation: int) -> None:
        if generation != self.generation:
            return  # invalidated while we were reading: do not store a stale answer
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {}
        self._entries[key] = (self._clock() + self.ttl_s, value)

    def clear(self) -> None:
        self.generation += 1
        self._entries = {}
        self._reads.forget()  # reads begun before the change are not shared from now on


class Resolver:
    """Deployments by name and targets to versions, cached for ``ttl_s`` seconds."""

    def __init__(
        self,
        deployments: Deployments,
        store: Store,
        *,
        ttl_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._deployments = deployments
        self._store = store
        self._by_name: _TTLMap[tuple[int, str], Deployment | None] = _TTLMap(ttl_s, clock)
        # A target that cannot serve is cached as its error message.
        self._targets: _TTLMap[tuple[int, str], ResolvedVersion | str] = _TTLMap(ttl_s, clock)

    async def deployment(self, project_id: int, name: str) -> Deployment:
        """The deployment ``name``; ``DeploymentNotFound`` (OpenAI's 404) when there is none."""
        found = await self._by_name.get((project_id, name), self._lookup)
        if found is None:
            raise DeploymentNotFound(name)
        return found

    async def version(self, project_id: int, target: str) -> ResolvedVersion:
        """The active version ``target`` points at; ``UpstreamError`` when it cannot serve."""
        found = await self._targets.get((project_id, target), self._resolve)
        if isinstance(found, str):
            raise UpstreamError(found, code="target_unavailable")
        return found

    def _lookup(self, key: tuple[int, str]) -> Deployment | None:
        return self._deployments.lookup(*key)

    def _resolve(self, key: tuple[int, str]) -> ResolvedVersion | str:
        project_id, target = key
        with self._store.read() as session:
            try:
                return resolve_active(session, project_id, target)
            except InvalidInput as exc:
                return exc.message

    def invalidate(self) -> None:
        """Forget everything (the next request reads the database again)."""
        self._by_name.clear()
        self._targets.clear()

    @hookimpl
    def modelcycle_deployment_changed(self, event: events.DeploymentChanged) -> None:
        """A deployment changed: forget cached routes."""
        self.invalidate()

    @hookimpl
    def modelcycle_alias_moved(self, event: events.AliasMoved) -> None:
        """An alias moved: forget cached resolutions."""
        self.invalidate()

    @hookimpl
    def modelcycle_version_archived(self, event: events.VersionArchived) -> None:
        """An archived version may not serve any more."""
        self.invalidate()

    @hookimpl
    def modelcycle_version_deleted(self, event: events.VersionDeleted) -> None:
        """A deleted version may not serve any more."""
        self.invalidate()
