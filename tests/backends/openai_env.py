"""What the ``openai`` backend tests share: gateway services and a version per upstream.

Imported as ``backends.openai_env`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai

from backends.openai_upstream import MockUpstream
from gateway.harness import Env, Finished
from modelcycle.api import create_app
from modelcycle.settings import Settings
from modelcycle.testing import admin_of, make_key, make_services, register
from modelcycle.types import BackendKind, Role

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@asynccontextmanager
async def gateway_env(settings: Settings) -> AsyncIterator[Env]:
    """Services with the admin and an ``app`` key, closed (backends included) at the end."""
    finished = Finished()
    services = make_services(settings, plugins=(finished,))
    env = Env(
        services=services,
        app=create_app(services),
        admin=admin_of(services),
        app_key=make_key(services, Role.APP),
        finished=finished,
    )
    try:
        yield env
    finally:
        for client in env.clients:
            if isinstance(client, openai.AsyncOpenAI):
                await client.close()
            else:
                await client.aclose()
        await services.gateway.aclose()
        services.close()


def openai_version(env: Env, model: str, upstream: MockUpstream, **params: Any) -> str:
    """Register the next version of ``model`` (kind openai, at ``upstream``); ``model@N``."""
    created = register(
        env.services,
        env.admin.principal,
        model,
        source=upstream.url,
        backend=BackendKind.OPENAI,
        params={"model": "upstream-model", **params},
    )
    return f"{model}@{created.version}"
