"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from modelcycle.api.errors import ERROR_RESPONSES, install_error_handlers
from modelcycle.api.front import InferenceApp
from modelcycle.api.inference_route import install_fast_routes
from modelcycle.api.limits import BodySizeLimit
from modelcycle.api.routes import (
    access,
    alerts,
    audit,
    datasets,
    deploy,
    drift,
    evals,
    guard,
    health,
    jobs,
    metrics,
    online_eval,
    openai,
    openai_files,
    openai_fine_tuning,
    otlp,
    privacy,
    registry,
    reports,
    safety_eval,
    secrets,
    tokenizer,
    traces,
    tune,
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

    app = InferenceApp(
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
    app.include_router(reports.eval_router, responses=ERROR_RESPONSES)  # /evals/{id}/report
    app.include_router(privacy.router, responses=ERROR_RESPONSES)
    app.include_router(guard.router, responses=ERROR_RESPONSES)
    app.include_router(datasets.router, responses=ERROR_RESPONSES)
    app.include_router(online_eval.router, responses=ERROR_RESPONSES)
    app.include_router(safety_eval.router, responses=ERROR_RESPONSES)  # /evals/redteam, /bias
    app.include_router(evals.router, responses=ERROR_RESPONSES)
    app.include_router(tune.router, responses=ERROR_RESPONSES)
    app.include_router(openai_files.router, responses=ERROR_RESPONSES)  # /v1/files
    app.include_router(openai_fine_tuning.router, responses=ERROR_RESPONSES)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=services.settings.max_body_bytes,
        path_limits={
            "/v1/traces": services.settings.otlp_max_body_bytes,
            # A fine-tuning file may be up to 50 MiB (multipart framing on top).
            openai_files.PATH: max(openai_files.MAX_UPLOAD_BYTES, services.settings.max_body_bytes),
        },
        # A dataset file may be up to 50 MiB; larger ones are refused with that limit named.
        prefix_limits={
            datasets.PREFIX: max(datasets.MAX_FILE_BYTES, services.settings.max_body_bytes)
        },
    )
    return app
