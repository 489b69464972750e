"""Fixtures for the API tests: in-process clients with any key, module-wide databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI

from postgres_schema import database_url

ClientFactory = Callable[[str | None], httpx.AsyncClient]


@pytest.fixture
async def client_for(modelcycle_app: FastAPI) -> AsyncIterator[ClientFactory]:
    """Make in-process clients that send ``Authorization: Bearer <key>`` (none for ``None``)."""
    clients: list[httpx.AsyncClient] = []

    def make(key: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=modelcycle_app),
            base_url="http://modelcycle.test",
            headers=headers,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def module_database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Like ``modelcycle_database_url``, shared by a whole module (for large matrices)."""
    with database_url(request.param) as url:
        yield url
