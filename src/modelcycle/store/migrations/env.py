"""Alembic environment: runs on the engine handed over by ``modelcycle.store.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine

from modelcycle.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _engine() -> Engine:
    given = config.attributes.get("engine")
    if isinstance(given, Engine):
        return given
    return create_engine(config.get_main_option("sqlalchemy.url") or "")


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
