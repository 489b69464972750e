"""The time ranges a page offers (``?range=24h``), resolved against now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "24h"


@dataclass(frozen=True, slots=True)
class Window:
    """A chosen range: its key (for links and the picker) and its bounds."""

    key: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        """Length of the window."""
        return (self.end - self.start).total_seconds()


def window(key: str | None, now: datetime | None = None) -> Window:
    """The window for ``key``; an unknown key falls back to the default (a page, not an API)."""
    chosen = key if key in RANGES else DEFAULT_RANGE
    end = now or datetime.now(UTC)
    return Window(key=chosen, start=end - RANGES[chosen], end=end)
