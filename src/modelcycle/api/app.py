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
    alerts,
    audit,
    deploy,
    drift,
    guard,
    health,
    jobs,
    metrics,
    openai,
    otlp,
    privacy,
    registry,
    reports,
    secrets,
    tokenizer,
    traces,
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
    app.include_router(otlp.router)  # POST /v1/traces: OTLP/HTTP span ingest
    app.include_router(tokenizer.router)  # vLLM's /tokenize, /detokenize, /tokenizer_info
    app.include_router(health.router)
    app.include_router(metrics.router)  # GET /metrics, Prometheus text
    for router in (access.router, registry.router, audit.router, deploy.router, secrets.router):
        app.include_router(router, responses=ERROR_RESPONSES)
    app.include_router(alerts.router, responses=ERROR_RESPONSES)
    app.include_router(traces.router, responses=ERROR_RESPONSES)
    app.include_router(jobs.router, responses=ERROR_RESPONSES)
    app.include_router(drift.router, responses=ERROR_RESPONSES)
    app.include_router(reports.router, responses=ERROR_RESPONSES)
    app.include_router(privacy.router, responses=ERROR_RESPONSES)
    app.include_router(guard.router, responses=ERROR_RESPONSES)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=services.settings.max_body_bytes,
        path_limits={"/v1/traces": services.settings.otlp_max_body_bytes},
    )
    return app
