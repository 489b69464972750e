"""Fixtures of the gateway tests: services with mock versions, keys, OpenAI SDK clients.

The request path is database-agnostic once a deployment is resolved (the
deployment tests cover both databases), so these run on SQLite only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

from gateway.harness import Env, Finished
from modelcycle.api import create_app
from modelcycle.settings import Settings
from modelcycle.testing import admin_of, make_key, make_services
from modelcycle.types import Role


@pytest.fixture
def modelcycle_database_url() -> str | None:
    """SQLite only (see the module docstring)."""
    return None


@pytest.fixture
async def env(modelcycle_settings: Settings) -> AsyncIterator[Env]:
    finished = Finished()
    services = make_services(modelcycle_settings, plugins=(finished,))
    built = Env(
        services=services,
        app=create_app(services),
        admin=admin_of(services),
        app_key=make_key(services, Role.APP),
        finished=finished,
    )
    yield built
    for client in built.clients:
        await client.close() if isinstance(client, openai.AsyncOpenAI) else await client.aclose()
    await services.gateway.aclose()
    services.close()
