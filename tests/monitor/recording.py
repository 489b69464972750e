"""What the recorder, metrics and OTLP export tests share: a gateway over chosen settings.

Imported as ``monitor.recording`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai

from gateway.harness import Env, Finished
from modelcycle.api import create_app
from modelcycle.settings import Settings
from modelcycle.testing import admin_of, make_key, make_services, make_settings
from modelcycle.types import Role


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[Env]:
    """Services over ``settings`` with an app key, torn down like the gateway tests do."""
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
            await client.close() if isinstance(
                client, openai.AsyncOpenAI
            ) else await client.aclose()
        await services.gateway.aclose()
        services.close()


def settings_for(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    """Test settings under ``tmp_path``; spans are written within 20 ms of a request."""
    # A short flush interval keeps the tests quick; the defaults are measured elsewhere.
    values: dict[str, Any] = {"trace_flush_interval_s": 0.02, **overrides}
    return make_settings(tmp_path / "home", database_url, **values)
