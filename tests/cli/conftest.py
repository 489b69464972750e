"""Fixtures of the CLI tests: a real server and a runner pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cli.runner import Cli
from e2e.live import LiveServer, free_port, serve
from modelcycle.access.keys import generate_key
from modelcycle.services import Services
from modelcycle.testing.factories import KeyPair


@pytest.fixture
def live_server(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Iterator[LiveServer]:
    """uvicorn serving the test's services on a free 127.0.0.1 port (SQLite and PostgreSQL)."""
    with serve(modelcycle_services, modelcycle_admin.key) as server:
        yield server


@pytest.fixture
def cli(live_server: LiveServer) -> Cli:
    """The CLI pointed at the live server with the admin key."""
    return Cli(live_server.url, live_server.admin_key)


@pytest.fixture
def offline_cli() -> Cli:
    """The CLI pointed at a port where nothing listens."""
    return Cli(f"http://127.0.0.1:{free_port()}", generate_key()[0])
