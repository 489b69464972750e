"""Fixtures of the deployment tests: the CLI against a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cli.runner import Cli
from e2e.live import LiveServer, serve
from modelcycle.services import Services
from modelcycle.testing import KeyPair


@pytest.fixture
def live_server(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Iterator[LiveServer]:
    """uvicorn serving the test's services on a free 127.0.0.1 port."""
    with serve(modelcycle_services, modelcycle_admin.key) as server:
        yield server


@pytest.fixture
def cli(live_server: LiveServer) -> Cli:
    """``modelcycle`` pointed at the live server with the admin key."""
    return Cli(live_server.url, live_server.admin_key)
