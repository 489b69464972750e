"""Fixtures of the CLI tests: a real server and a runner pointed at it."""

from __future__ import annotations

import pytest

from cli.runner import Cli
from e2e.live import LiveServer, free_port
from modelcycle.access.keys import generate_key


@pytest.fixture
def cli(live_server: LiveServer) -> Cli:
    """The CLI pointed at the live server with the admin key."""
    return Cli(live_server.url, live_server.admin_key)


@pytest.fixture
def offline_cli() -> Cli:
    """The CLI pointed at a port where nothing listens."""
    return Cli(f"http://127.0.0.1:{free_port()}", generate_key()[0])
