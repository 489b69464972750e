"""Circuit breakers: a version that keeps failing is taken out of routing, then probed back in.

Each version (project, model, version number) has one circuit per gateway
process::

    closed ──(N consecutive failures, or error rate over the window)──> open
    open ──(cooldown_s elapsed)──> half-open: one probe request at a time
    half-open ──probe succeeds──> closed      half-open ──probe fails──> open

While a circuit is open the gateway sends the request to the deployment's
other routes, then its fallbacks; when every candidate is open it answers 503
``circuit_open`` with ``Retry-After`` (the time until the first probe) instead
of calling a version that is known to fail. Each state change is logged once.
The policy comes from the deployment (``BreakerPolicy``) on every call, so a
change applies without a restart.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from modelcycle.deploy import BreakerPolicy
from modelcycle.errors import UpstreamError

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half_open"]
VersionKey = tuple[int, str, int]
"""(project id, model, version number)."""

SLICES = 10
"""The error-rate window is kept as this many slices (a sliding window, to a tenth)."""


class CircuitOpen(UpstreamError):
    """Every version that could serve the request is out of routing for now."""

    status_code = 503

    def __init__(self, deployment: str, retry_after_s: float):
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__(
            f"deployment '{deployment}': every version that could serve it is failing and "
            f"out of routing (circuit open); retry in {seconds} s",
            code="circuit_open",
            headers={"Retry-After": str(seconds)},
        )


@dataclass
class _Circuit:
    state: State = "closed"
    consecutive: int = 0
    opened_at: float = 0.0
    probing: bool = False
    # Error-rate window: [slice start, calls, failures] per slice.
    slices: list[list[float]] = field(default_factory=list)

    def record(self, now: float, failed: bool, window_s: float) -> None:
        width = window_s / SLICES
        start = now - now % width
        if not self.slices or self.slices[-1][0] != start:
            self.slices.append([start, 0.0, 0.0])
            self.slices = [s for s in self.slices if s[0] > now - window_s]
        self.slices[-1][1] += 1
        self.slices[-1][2] += failed

    def rate(self, now: float, window_s: float) -> tuple[int, float]:
        live = [s for s in self.slices if s[0] > now - window_s]
        calls = sum(s[1] for s in live)
        return int(calls), (sum(s[2] for s in live) / calls if calls else 0.0)


class Breakers:
    """The circuits of this process (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._circuits: dict[VersionKey, _Circuit] = {}

    def state(self, key: VersionKey) -> State:
        """The state of a version's circuit (``closed`` when it never failed)."""
        circuit = self._circuits.get(key)
        return circuit.state if circuit else "closed"

    def allows(self, key: VersionKey, policy: BreakerPolicy) -> bool:
        """Whether a request may be routed to the version now."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.state == "closed" or not policy.enabled:
            return True
        if circuit.state == "open":
            if self._clock() - circuit.opened_at < policy.cooldown_s:
                return False
            circuit.state, circuit.probing = "half_open", False
            log.warning("circuit of %s half-open: the next request probes it", _name(key))
        return not circuit.probing

    def retry_after(self, key: VersionKey, policy: BreakerPolicy) -> float:
        """Seconds until the version may be probed (0 when it may be called now)."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.state != "open":
            return 0.0
        return max(0.0, circuit.opened_at + policy.cooldown_s - self._clock())

    def begin(self, key: VersionKey, policy: BreakerPolicy) -> bool:
        """A call to the version starts: claims the probe when half-open (``False``: taken)."""
        if not self.allows(key, policy):
            return False
        circuit = self._circuits.get(key)
        if circuit is not None and circuit.state == "half_open":
            circuit.probing = True
        return True

    def success(self, key: VersionKey, policy: BreakerPolicy) -> None:
        """A call to the version succeeded."""
        circuit = self._circuits.get(key)
        if circuit is None:
            if policy.error_rate is None:
                return  # nothing to remember about a healthy version
            circuit = self._circuits[key] = _Circuit()
        if policy.error_rate is not None:
            circuit.record(self._clock(), False, policy.window_s)
        if circuit.state != "closed":
            log.warning("circuit of %s closed: the probe succeeded", _name(key))
        circuit.state, circuit.consecutive, circuit.probing = "closed", 0, False
        if policy.error_rate is None:
            del self._circuits[key]

    def failure(self, key: VersionKey, policy: BreakerPolicy) -> None:
        """A call to the version failed (an upstream error or timeout)."""
        if not policy.enabled:
            return
        now = self._clock()
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.consecutive += 1
        if policy.error_rate is not None:
            circuit.record(now, True, policy.window_s)
        if circuit.state == "half_open":
            self._open(key, circuit, now, "the probe failed")
        elif circuit.state == "closed":
            if policy.failures and circuit.consecutive >= policy.failures:
                self._open(key, circuit, now, f"{circuit.consecutive} failures in a row")
                return
            if policy.error_rate is not None:
                calls, rate = circuit.rate(now, policy.window_s)
                if calls >= policy.min_requests and rate >= policy.error_rate:
                    self._open(key, circuit, now, f"{rate:.0%} of {calls} calls failed")

    def release(self, key: VersionKey) -> None:
        """A probe ended without an outcome (the client went away): let another probe."""
        circuit = self._circuits.get(key)
        if circuit is not None:
            circuit.probing = False

    def _open(self, key: VersionKey, circuit: _Circuit, now: float, why: str) -> None:
        circuit.state, circuit.opened_at, circuit.probing = "open", now, False
        circuit.slices = []
        log.warning("circuit of %s opened (%s): out of routing for a cool-down", _name(key), why)


def _name(key: VersionKey) -> str:
    return f"{key[1]}@{key[2]} (project id {key[0]})"
