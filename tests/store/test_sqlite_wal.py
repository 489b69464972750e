"""SQLite's write-ahead log: checkpointed every ``WAL_CHECKPOINT_PAGES``, not every 1,000."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from modelcycle.store import Store
from modelcycle.store.engine import WAL_CHECKPOINT_PAGES


def wal_frames(store: Store) -> int:
    """Frames in the log now (a passive checkpoint's report, which it leaves in place)."""
    with store.read_engine.connect() as conn:
        busy, frames, _copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    assert busy == 0
    return int(frames)


def test_writes_checkpoint_far_less_often_than_sqlites_default(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with store.write_engine.begin() as conn:
            conn.execute(text("CREATE TABLE blobs (body TEXT)"))
        with store.read_engine.connect() as conn:  # a reader's setting is SQLite's own
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        for _ in range(30):  # ~1,500 pages in 30 commits, each one a chance to checkpoint
            with store.write_engine.begin() as conn:
                rows = [{"body": "x" * 4000} for _ in range(50)]
                conn.execute(text("INSERT INTO blobs (body) VALUES (:body)"), rows)
        with store.write_engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 10_000
        # A passive checkpoint copies pages but leaves the log: it reports its length.
        assert 1_000 < wal_frames(store) < WAL_CHECKPOINT_PAGES
    finally:
        store.dispose()
