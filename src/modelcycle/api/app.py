"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from modelcycle.api.errors import ERROR_RESPONSES, install_error_handlers
from modelcycle.api.inference_route import install_fast_routes
from modelcycle.api.limits import BodySizeLimit
from modelcycle.api.routes import (
    access,
    audit,
    deploy,
    health,
    openai,
    registry,
    secrets,
    tokenizer,
)
from modelcycle.services import Services
from modelcycle.version import __version__


def create_app(services: Services) -> FastAPI:
    """An app serving ``services``; the caller owns their lifetime."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        # Backends hold connections and shadow calls bound to this event loop.
        await services.gateway.aclose()

    app = FastAPI(
        title="modelcycle",
        version=__version__,
        description="Deploy, monitor, evaluate and tune the LLMs you run in production.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    # Routes are matched in order: the OpenAI routes carry nearly all the traffic.
    app.include_router(openai.router, responses=openai.RESPONSES)
    install_fast_routes(app, openai.router)  # the common case, ahead of FastAPI's routing
    app.include_router(tokenizer.router)  # vLLM's /tokenize, /detokenize, /tokenizer_info
    app.include_router(health.router)
    for router in (access.router, registry.router, audit.router, deploy.router, secrets.router):
        app.include_router(router, responses=ERROR_RESPONSES)
    app.add_middleware(BodySizeLimit, max_bytes=services.settings.max_body_bytes)
    return app
