"""One blocking read per key at a time, on a worker thread, however many coroutines ask.

The request path's caches (authenticated keys, deployments, targets) read the
database only on a miss. Under load every request would find an entry expired
at the same moment and each start a read on a thread of its own; with
``SingleFlight`` the first starts the read and the others await the same one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Reads by key: ``start`` one (or join the one running), ``call`` to await it."""

    def __init__(self) -> None:
        self._reads: dict[K, asyncio.Task[V]] = {}

    def running(self, key: K) -> bool:
        """Whether a read of ``key`` is under way."""
        return key in self._reads

    def start(
        self, key: K, read: Callable[[], V], *, then: Callable[[V], None] | None = None
    ) -> asyncio.Task[V]:
        """The read of ``key`` under way in this event loop, else ``read`` on a worker thread.

        ``then`` is given the result of a read started by this call, once it succeeds
        (a read already under way keeps the ``then`` of whoever started it).
        """
        loop = asyncio.get_running_loop()
        task = self._reads.get(key)
        if task is not None and task.get_loop() is loop:
            return task
        task = loop.create_task(asyncio.to_thread(read))
        self._reads[key] = task

        def done(finished: asyncio.Task[V]) -> None:
            if self._reads.get(key) is finished:
                del self._reads[key]
            if finished.cancelled():
                return
            # Retrieved here, so a failed background read is not "never retrieved".
            if finished.exception() is None and then is not None:
                then(finished.result())

        task.add_done_callback(done)
        return task

    async def call(self, key: K, read: Callable[[], V]) -> V:
        """The result of the read of ``key`` (started here unless one is under way).

        A waiter that is cancelled does not cancel the read the others await.
        """
        return await asyncio.shield(self.start(key, read))

    def forget(self) -> None:
        """Share no read begun so far with later callers (what it reads may be stale)."""
        self._reads = {}
