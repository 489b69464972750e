"""The Redis connection the gateway's limits and cache share between processes.

redis-py (``modelcycle[redis]``) is imported on first use. The client is bound
to the event loop that made it and rebuilt for another loop. When Redis fails,
the connection is marked down for ``retry_after_s`` so that the requests in
between do not each wait for a connect timeout; the outage and the recovery
are logged once each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from modelcycle.errors import MissingExtra

log = logging.getLogger(__name__)

T = TypeVar("T")


class SharedUnavailable(Exception):
    """Redis cannot be used right now (down, or marked down after a recent failure)."""


class SharedRedis:
    """A lazily built ``redis.asyncio`` client with outage tracking."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        timeout_s: float = 0.5,
        retry_after_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.url, self.prefix = url, prefix
        self._timeout, self._retry_after, self._clock = timeout_s, retry_after_s, clock
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._down_until = 0.0
        self._down = False
        self._errors: tuple[type[BaseException], ...] = ()

    def client(self) -> Any:
        """The ``redis.asyncio.Redis`` of the running loop."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            try:
                import redis.asyncio as aioredis
                from redis.exceptions import RedisError
            except ImportError as exc:
                raise MissingExtra("redis", "redis") from exc
            self._errors = (RedisError, OSError, TimeoutError)
            self._client = aioredis.Redis.from_url(
                self.url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry_on_timeout=False,
            )
            self._loop = loop
        return self._client

    async def run(self, operation: Callable[[Any], Awaitable[T]]) -> T:
        """``operation(client)``; ``SharedUnavailable`` when Redis is (or just was) down."""
        if self._down and self._clock() < self._down_until:
            raise SharedUnavailable(self.url)
        client = self.client()
        try:
            result = await operation(client)
        except self._errors as exc:
            self._down_until = self._clock() + self._retry_after
            if not self._down:
                self._down = True
                log.warning(
                    "Redis at %s is unreachable (%s); using the fallback until it answers",
                    _safe(self.url),
                    type(exc).__name__,
                )
            raise SharedUnavailable(self.url) from exc
        if self._down:
            self._down = False
            log.warning("Redis at %s answers again", _safe(self.url))
        return result

    async def aclose(self) -> None:
        """Close the connection pool (of the loop that built it)."""
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            # RuntimeError: built on a loop that is gone, so nothing is open any more.
            with contextlib.suppress(RuntimeError):
                await client.aclose()


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"
