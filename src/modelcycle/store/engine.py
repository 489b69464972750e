"""Database engines and transactional sessions.

SQLite runs in WAL mode with two engines on the same file: readers begin a
deferred transaction, writers ``BEGIN IMMEDIATE`` so that two writers queue on
the lock instead of failing on upgrade. PostgreSQL uses one engine for both;
writers that must serialise take row locks (``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from modelcycle.errors import InvalidInput, MissingExtra, StoreError


class Store:
    """The database of one modelcycle deployment."""

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0):
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise InvalidInput(f"invalid database URL {url!r}: {exc}") from exc
        self.url = url
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            self._prepare_sqlite_file(parsed.database)
            self.write_engine = _sqlite_engine(url, busy_timeout_s, writes=True)
            self.read_engine = _sqlite_engine(url, busy_timeout_s, writes=False)
        else:
            self.write_engine = _server_engine(url)
            self.read_engine = self.write_engine
        self._writer = sessionmaker(self.write_engine, expire_on_commit=False)
        self._reader = sessionmaker(self.read_engine, expire_on_commit=False)

    @staticmethod
    def _prepare_sqlite_file(database: str | None) -> None:
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)

    @property
    def is_sqlite(self) -> bool:
        """Whether this store is a SQLite file."""
        return self.dialect == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any error."""
        with self._writer() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work (rolled back at the end)."""
        with self._reader() as session:
            yield session

    def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers a query."""
        try:
            with self.read_engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            raise StoreError(f"database unreachable: {exc.orig}") from exc

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


WAL_CHECKPOINT_PAGES = 10_000
"""Pages the write-ahead log may hold before a write connection checkpoints it (SQLite's
default: 1,000). Each checkpoint ends in an fsync of the database, which on a slow disk
cost the trace writer a tenth of its throughput at the default (docs/performance.md)."""
WAL_LIMIT_BYTES = 64 * 1024 * 1024
"""What the log is cut back to after a checkpoint, should a long read have let it grow."""


def _sqlite_engine(url: str, busy_timeout_s: float, *, writes: bool) -> Engine:
    """An engine whose connections write (take the write lock at BEGIN, and checkpoint) or read."""
    begin = "BEGIN IMMEDIATE" if writes else "BEGIN"
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        if writes:  # only these connections commit, so only they checkpoint
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            cursor.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _server_engine(url: str) -> Engine:
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except ModuleNotFoundError as exc:
        if "psycopg" in str(exc):
            raise MissingExtra("psycopg", "postgres") from exc
        raise
