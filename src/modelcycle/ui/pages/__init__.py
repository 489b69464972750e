"""One router per section of the dashboard."""

from fastapi import APIRouter

from modelcycle.ui.pages import (
    audit,
    deployments,
    evals,
    guard,
    keys,
    models,
    monitoring,
    overview,
    playground,
    signin,
    traces,
    tuning,
)

PAGE_ROUTERS: tuple[APIRouter, ...] = (
    signin.router,
    overview.router,
    models.router,
    deployments.router,
    traces.router,
    monitoring.router,
    evals.router,
    tuning.router,
    guard.router,
    playground.router,
    audit.router,
    keys.router,
)
