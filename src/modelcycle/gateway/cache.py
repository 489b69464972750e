"""Short-lived caches of deployments and target resolutions, cleared on every change.

The request path reads the database only on a miss. Entries expire after
``ttl_s`` (which bounds staleness when another process made the change) and the
whole cache is dropped on ``DeploymentChanged``, ``AliasMoved`` and version
archive/delete events of this process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from modelcycle import events
from modelcycle.deploy import Deployment, Deployments, ResolvedVersion, resolve_active
from modelcycle.errors import InvalidInput, NotFound, UpstreamError
from modelcycle.hookspecs import hookimpl
from modelcycle.store import Store

K = TypeVar("K")
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
    def __init__(self, ttl_s: float, clock: Callable[[], float]):
        self.ttl_s, self._clock = ttl_s, clock
        self._entries: dict[K, tuple[float, V]] = {}
        self.generation = 0

    def get(self, key: K) -> tuple[bool, V | None]:
        found = self._entries.get(key)
        if found is None or found[0] < self._clock():
            return False, None
        return True, found[1]

    def put(self, key: K, value: V, generation: int) -> None:
        if generation != self.generation:
            return  # invalidated while we were reading: do not store a stale answer
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {}
        self._entries[key] = (self._clock() + self.ttl_s, value)

    def clear(self) -> None:
        self.generation += 1
        self._entries = {}


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
        key = (project_id, name)
        hit, found = self._by_name.get(key)
        if not hit:
            generation = self._by_name.generation
            found = await asyncio.to_thread(self._deployments.lookup, project_id, name)
            self._by_name.put(key, found, generation)
        if found is None:
            raise DeploymentNotFound(name)
        return found

    async def version(self, project_id: int, target: str) -> ResolvedVersion:
        """The active version ``target`` points at; ``UpstreamError`` when it cannot serve."""
        key = (project_id, target)
        hit, found = self._targets.get(key)
        if not hit:
            generation = self._targets.generation
            found = await asyncio.to_thread(self._resolve, project_id, target)
            self._targets.put(key, found, generation)
        if isinstance(found, str):
            raise UpstreamError(found, code="target_unavailable")
        assert found is not None
        return found

    def _resolve(self, project_id: int, target: str) -> ResolvedVersion | str:
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
