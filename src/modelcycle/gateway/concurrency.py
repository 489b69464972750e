"""The concurrency limit of a deployment: at most N requests in flight per gateway process.

Requests over the limit wait in arrival order for up to the deployment's
``queue_timeout_s``, then get a 429 ``rate_limit_error`` with ``Retry-After``.
429 rather than 503 because every OpenAI SDK retries it honouring
``Retry-After``, applications already handle ``openai.RateLimitError`` with
backoff, and a 429 says "slow down" without counting as a server failure in
the caller's own alerting or circuit breakers.

The limit is read from the deployment on every request, so a change applies
to the next request without a restart (a lowered limit drains as requests end).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque

from modelcycle.errors import RateLimited


class Gate:
    """The in-flight count and waiting line of one deployment."""

    __slots__ = ("_waiters", "in_flight")

    def __init__(self) -> None:
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiters)

    async def enter(self, limit: int, timeout_s: float, deployment: str) -> None:
        """Take a slot, waiting up to ``timeout_s``; ``RateLimited`` when none frees up."""
        if self.in_flight < limit and not self._waiters:
            self.in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.leave(limit)  # the slot was handed over as we gave up: pass it on
            else:
                waiter.cancel()
                self._remove(waiter)
            if isinstance(exc, TimeoutError):
                raise RateLimited(
                    f"Too many concurrent requests for deployment '{deployment}': "
                    f"{limit} in flight and none finished within {timeout_s:g} s. "
                    "Please try again shortly.",
                    code="concurrency_limit_exceeded",
                    headers={"Retry-After": str(max(1, math.ceil(timeout_s)))},
                ) from None
            raise

    def leave(self, limit: int) -> None:
        """Give a slot back: to the next waiter when there is one and room."""
        self.in_flight -= 1
        while self._waiters and self.in_flight < limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def _remove(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)


class Gates:
    """The gates of every deployment of this process, dropped when idle."""

    def __init__(self) -> None:
        self._gates: dict[tuple[int, str], Gate] = {}

    async def enter(
        self, project_id: int, deployment: str, limit: int, timeout_s: float
    ) -> tuple[int, str]:
        """Take a slot of ``deployment``; returns the handle to pass to ``leave``."""
        key = (project_id, deployment)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = Gate()
        try:
            await gate.enter(limit, timeout_s, deployment)
        except BaseException:
            self._drop_if_idle(key, gate)
            raise
        return key

    def leave(self, key: tuple[int, str], limit: int) -> None:
        """Give the slot of ``key`` back."""
        gate = self._gates.get(key)
        if gate is None:
            return
        gate.leave(limit)
        self._drop_if_idle(key, gate)

    def in_flight(self, project_id: int, deployment: str) -> int:
        """Requests of ``deployment`` holding a slot now."""
        gate = self._gates.get((project_id, deployment))
        return gate.in_flight if gate else 0

    def _drop_if_idle(self, key: tuple[int, str], gate: Gate) -> None:
        if gate.in_flight <= 0 and not gate.waiting and self._gates.get(key) is gate:
            del self._gates[key]
