"""Throttling of failed authentication, per client address.

An address that fails to authenticate ``limit`` times within ``window_s``
seconds (a window opens at its first failure) is refused with 429 for the rest
of that window, even when it then presents a valid key, and without a database
read: guessing keys, or hammering the server with revoked ones, stops costing
anything after the first ``limit`` tries. Successful authentications neither
count nor reset the count, so an attacker holding one valid key cannot use it
to clear its record.

The success path is one truthiness test of ``blocked``, a dict that is empty
unless some address is blocked right now, and takes no lock; counting failures
takes one. Memory is bounded: at most ``max_addresses`` open windows and as
many blocks, the least recently failing address evicted first, so an attacker
rotating addresses churns the table but cannot grow it.

The HTTP layer says what an address is (``modelcycle.api.deps.client_address``:
IPv4 address or IPv6 /64). See docs/access.md.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelcycle.errors import RateLimited

log = logging.getLogger(__name__)

MAX_ADDRESSES = 10_000


@dataclass(slots=True)
class _Window:
    opened_at: float
    failures: int


class AuthThrottle:
    """Counts failed authentications per address and refuses blocked addresses.

    ``limit`` 0 turns the throttle off (nothing is counted, nothing refused).
    """

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limit = limit
        self.window_s = window_s
        self._max = max_addresses
        self._clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self.blocked: OrderedDict[str, float] = OrderedDict()
        """Address -> when its block ends (read-only); empty in the normal case, so that
        callers test it before working out the caller's address."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Addresses remembered (open windows and blocks): at most ``2 * max_addresses``."""
        return len(self._windows) + len(self.blocked)

    def check(self, address: str | None) -> None:
        """Raise ``RateLimited`` (429 with ``Retry-After``) when ``address`` is blocked now."""
        if address is None:
            return
        until = self.blocked.get(address)
        if until is None:
            return
        left = until - self._clock()
        if left <= 0:
            self._unblock(address, until)
            return
        retry_after = max(1, math.ceil(left))
        raise RateLimited(
            f"too many failed authentications from this address; retry in {retry_after} s",
            code="auth_throttled",
            headers={"Retry-After": str(retry_after)},
        )

    def failed(self, address: str | None) -> None:
        """Count one failed authentication of ``address``; block it at the limit."""
        if self.limit <= 0 or address is None:
            return
        now = self._clock()
        with self._lock:
            window = self._windows.get(address)
            if window is None or now - window.opened_at >= self.window_s:
                window = self._windows[address] = _Window(now, 0)
            self._windows.move_to_end(address)
            window.failures += 1
            if len(self._windows) > self._max:
                self._windows.popitem(last=False)
            until = window.opened_at + self.window_s
            if window.failures < self.limit or self.blocked.get(address) == until:
                return
            self.blocked[address] = until
            self.blocked.move_to_end(address)
            if len(self.blocked) > self._max:
                self.blocked.popitem(last=False)
        log.warning(
            "refusing %s for %.0f s: %d failed authentications within %.0f s",
            address,
            until - now,
            window.failures,
            self.window_s,
        )

    def _unblock(self, address: str, until: float) -> None:
        with self._lock:
            if self.blocked.get(address) == until:  # not blocked again meanwhile
                del self.blocked[address]
                self._windows.pop(address, None)


_IPV4_MAPPED = bytes(10) + b"\xff\xff"


def client_address(scope: Mapping[str, Any]) -> str | None:
    """The address failed authentications are counted by: IPv4 address, or IPv6 /64.

    One IPv6 subscriber commonly holds a whole /64, so single IPv6 addresses
    would let a client rotate past the throttle. Behind a reverse proxy this is
    the proxy unless the ASGI server trusts its ``X-Forwarded-For``. (Parsed
    with ``inet_pton``: ``ipaddress`` costs tens of microseconds a request.)
    """
    client = scope.get("client")
    if not client:
        return None
    host = str(client[0])
    if ":" not in host:
        return host
    try:
        packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])  # no zone id
    except OSError:
        return host
    if packed[:12] == _IPV4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return socket.inet_ntop(socket.AF_INET6, packed[:8] + bytes(8)) + "/64"
