"""pytest fixtures for testing code that uses modelcycle (registered as a pytest11 plugin).

Fixtures:
    modelcycle_database_url: database for the test (``None`` = SQLite under tmp_path).
    modelcycle_settings: settings on a throwaway home directory.
    modelcycle_services: migrated services with the root project and an admin key.
    modelcycle_admin: the admin ``KeyPair``.
    modelcycle_app: the FastAPI app over those services.
    modelcycle_api: an ``httpx.AsyncClient`` calling the app in process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from modelcycle.api import create_app
from modelcycle.services import Services
from modelcycle.settings import Settings
from modelcycle.testing.factories import KeyPair, admin_of, make_services, make_settings


@pytest.fixture
def modelcycle_database_url() -> str | None:
    """Override to run against another database; ``None`` means SQLite in tmp_path."""
    return None


@pytest.fixture
def modelcycle_settings(tmp_path: Path, modelcycle_database_url: str | None) -> Settings:
    """Settings whose data lives in the test's tmp_path."""
    return make_settings(tmp_path / "home", modelcycle_database_url)


@pytest.fixture
def modelcycle_services(modelcycle_settings: Settings) -> Iterator[Services]:
    """Bootstrapped services; closed after the test."""
    services = make_services(modelcycle_settings)
    yield services
    services.close()


@pytest.fixture
def modelcycle_admin(modelcycle_services: Services) -> KeyPair:
    """The bootstrap admin key."""
    return admin_of(modelcycle_services)


@pytest.fixture
def modelcycle_app(modelcycle_services: Services) -> FastAPI:
    """The FastAPI app."""
    return create_app(modelcycle_services)


@pytest.fixture
async def modelcycle_api(
    modelcycle_app: FastAPI, modelcycle_admin: KeyPair
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client authenticated as the admin."""
    transport = httpx.ASGITransport(app=modelcycle_app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://modelcycle.test",
        headers={"Authorization": f"Bearer {modelcycle_admin.key}"},
    ) as client:
        yield client
