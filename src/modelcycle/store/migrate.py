"""Alembic migrations, run programmatically (``modelcycle db upgrade``, ``modelcycle up``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from modelcycle.store.engine import Store

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(store: Store) -> Config:
    """An Alembic config bound to ``store``'s write engine."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", store.url.replace("%", "%%"))
    config.attributes["engine"] = store.write_engine
    return config


def upgrade(store: Store, revision: str = "head") -> None:
    """Apply every migration up to ``revision``."""
    command.upgrade(alembic_config(store), revision)


def head_revision(store: Store) -> str | None:
    """The newest migration shipped with this package."""
    return ScriptDirectory.from_config(alembic_config(store)).get_current_head()


def current_revision(store: Store) -> str | None:
    """The migration the database is at, ``None`` before the first."""
    with store.read_engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_up_to_date(store: Store) -> bool:
    """Whether the database is at the newest migration."""
    return current_revision(store) == head_revision(store)
