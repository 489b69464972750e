"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from modelcycle.api.deps import ServicesDep
from modelcycle.errors import StoreError
from modelcycle.store.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Liveness: the process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Readiness: the database answers and is at the newest migration."""

    status: Literal["ready", "not_ready"]
    database: Literal["ok", "unreachable"]
    migration: str | None
    expected_migration: str | None
    reason: str | None = None


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Always 200 while the process is serving."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(services: ServicesDep) -> JSONResponse:
    """200 when the database is reachable and fully migrated, else 503 with the reason."""
    expected = head_revision(services.store)
    try:
        services.store.ping()
        current = current_revision(services.store)
    except (StoreError, SQLAlchemyError):
        body = Readiness(
            status="not_ready",
            database="unreachable",
            migration=None,
            expected_migration=expected,
            reason="database unreachable",
        )
        return JSONResponse(body.model_dump(), status_code=503)
    ready = current == expected
    body = Readiness(
        status="ready" if ready else "not_ready",
        database="ok",
        migration=current,
        expected_migration=expected,
        reason=None if ready else "migrations pending; run: modelcycle db upgrade",
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
