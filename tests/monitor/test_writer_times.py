"""Span times written by the batched SQLite path are the text SQLAlchemy itself writes.

Queries compare ``start_time`` with bounds SQLAlchemy renders, so a stored time in any
other form (an offset left on, microseconds dropped) would sort and filter wrongly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import DATETIME

from modelcycle.monitor.writer import _sqlite_time

INSTANT = datetime(2026, 11, 30, 23, 0, 0, 120_000, tzinfo=UTC)


def sqlalchemy_text(naive_utc: datetime) -> str:
    bind = DATETIME().bind_processor(sqlite.dialect())
    assert bind is not None
    text: str = bind(naive_utc)
    return text


@pytest.mark.parametrize(
    "value",
    [
        INSTANT,  # the gateway's times (UTC, as parsed from the event's JSON)
        datetime.fromisoformat(INSTANT.isoformat()),
        INSTANT.astimezone(timezone(timedelta(hours=2))),  # another offset, same instant
        INSTANT.replace(tzinfo=None),  # naive: taken as UTC
        INSTANT.replace(microsecond=0),  # whole seconds keep their six digits
    ],
)
def test_a_span_time_is_stored_as_sqlalchemy_stores_it(value: datetime) -> None:
    naive_utc = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    assert _sqlite_time(value) == sqlalchemy_text(naive_utc)
