"""Fixtures of the end-to-end tests: a real server on a socket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.live import LiveServer, serve
from modelcycle.services import Services
from modelcycle.testing.factories import KeyPair


@pytest.fixture
def live_server(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Iterator[LiveServer]:
    """uvicorn serving the test's services on a free 127.0.0.1 port (SQLite and PostgreSQL)."""
    with serve(modelcycle_services, modelcycle_admin.key) as server:
        yield server
