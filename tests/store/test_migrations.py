"""Migrations and the ORM agree, apply on both databases, and carry data forward."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from modelcycle.store import Store
from modelcycle.store.migrate import current_revision, head_revision, is_up_to_date, upgrade
from modelcycle.store.tables import Base


@pytest.fixture
def store(tmp_path: Path, modelcycle_database_url: str | None) -> Iterator[Store]:
    url = modelcycle_database_url or f"sqlite:///{tmp_path / 'm.db'}"
    created = Store(url)
    yield created
    created.dispose()


def test_migrated_schema_matches_the_orm_tables(store: Store) -> None:
    upgrade(store)
    with store.write_engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []
    assert is_up_to_date(store)


def test_a_fresh_database_is_not_ready_until_migrated(store: Store) -> None:
    assert current_revision(store) is None
    assert not is_up_to_date(store)
    upgrade(store)
    assert current_revision(store) == head_revision(store)


def test_version_counter_migration_continues_after_existing_versions(store: Store) -> None:
    upgrade(store, "0002")
    with store.write_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO projects (id, name, description, created_at) "
                "VALUES (1, 'p', '', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO models (id, project_id, name, description, metadata, "
                "created_at) VALUES (1, 1, 'bot', '', '{}', CURRENT_TIMESTAMP)"
            )
        )
        for number in (1, 2, 5):
            conn.execute(
                text(
                    "INSERT INTO model_versions (model_id, version, source, backend, params, "
                    "metadata, status, created_by, created_at) VALUES (1, :n, 's', 'mock', '{}', "
                    "'{}', 'active', 'test', CURRENT_TIMESTAMP)"
                ),
                {"n": number},
            )
    upgrade(store)
    with store.read_engine.connect() as conn:
        assert conn.execute(text("SELECT last_version FROM models WHERE id = 1")).scalar() == 5
