"""A throwaway PostgreSQL schema per test (or per module), shared by the conftests.

The server is ``MODELCYCLE_TEST_POSTGRES_URL`` (default: the local trust-auth server,
database ``test``); where it does not answer, callers skip with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

POSTGRES_URL = os.environ.get(
    "MODELCYCLE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@cache
def postgres_unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or ``None`` when they can."""
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except (OperationalError, ModuleNotFoundError) as exc:
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}"
    return None


@contextmanager
def database_url(kind: str) -> Iterator[str | None]:
    """``None`` (SQLite under tmp_path) or the URL of a fresh schema, dropped afterwards."""
    if kind == "sqlite":
        yield None
        return
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
