"""Fixtures for the API tests: in-process clients authenticated with any key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

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
