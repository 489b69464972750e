"""Suite-wide fixtures: every test that uses the store runs on SQLite and on PostgreSQL.

PostgreSQL tests use a schema of their own on the server of ``postgres_schema.py``;
where no server answers they are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.live import LiveServer, serve
from modelcycle.services import Services
from modelcycle.testing.factories import KeyPair
from postgres_schema import database_url

BOTH_DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BOTH_DATABASES)
def modelcycle_database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """SQLite under tmp_path, or a fresh schema on the PostgreSQL server."""
    with database_url(request.param) as url:
        yield url


@pytest.fixture
def live_server(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Iterator[LiveServer]:
    """uvicorn serving the test's services on a free 127.0.0.1 port (SQLite and PostgreSQL)."""
    with serve(modelcycle_services, modelcycle_admin.key) as server:
        yield server
