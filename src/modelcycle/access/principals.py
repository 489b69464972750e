"""An in-process cache of authenticated callers, so that the request path skips the database.

Keyed by the SHA-256 digest of the presented key (the key itself is never kept).
An entry lives ``ttl_s`` seconds, which bounds how long a change made by
*another* process (a key revoked through a second server) takes to reach this
one; a revocation made through this process's ``AccessService`` forgets the
key at once. A key's own expiry is checked on every hit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from modelcycle.access.schemas import Principal
from modelcycle.store.tables import utcnow

MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class _Entry:
    fresh_until: float
    principal: Principal
    expires_at: datetime | None


class PrincipalCache:
    """Principals by key digest for ``ttl_s`` seconds (0 turns the cache off)."""

    REFRESH_SHARE = 0.25

    def __init__(self, ttl_s: float, *, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, digest: object) -> bool:
        return digest in self._entries

    @property
    def generation(self) -> int:
        """Changes on every invalidation; pass it back to ``put``."""
        return self._generation

    def get(self, digest: str) -> Principal | None:
        """The cached caller for a key digest, ``None`` on a miss or a stale entry."""
        return self.lookup(digest)[0]

    def lookup(self, digest: str) -> tuple[Principal | None, bool]:
        """``get``, and whether the entry is in the last ``REFRESH_SHARE`` of its life.

        The request path reads a key whose entry is due again in the background.
        """
        entry = self._entries.get(digest)
        if entry is None:
            return None, False
        left = entry.fresh_until - self._clock()
        if left < 0 or (entry.expires_at is not None and entry.expires_at <= utcnow()):
            self._entries.pop(digest, None)
            return None, False
        return entry.principal, left < self.ttl_s * self.REFRESH_SHARE

    def put(
        self, digest: str, principal: Principal, expires_at: datetime | None, generation: int
    ) -> None:
        """Remember a caller read from the database when the read began at ``generation``."""
        if self.ttl_s <= 0:
            return
        with self._lock:
            if generation != self._generation:
                return  # a key was revoked while we read: the answer may be stale
            if len(self._entries) >= MAX_ENTRIES:
                self._entries = {}
            self._entries[digest] = _Entry(self._clock() + self.ttl_s, principal, expires_at)

    def forget(self, digest: str) -> None:
        """Drop one key digest (the database just refused it)."""
        self._entries.pop(digest, None)

    def forget_key(self, key_id: int) -> None:
        """Drop every entry of one key (it was revoked or changed in this process)."""
        with self._lock:
            self._generation += 1
            self._entries = {
                digest: entry
                for digest, entry in self._entries.items()
                if entry.principal.key_id != key_id
            }

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._generation += 1
            self._entries = {}
