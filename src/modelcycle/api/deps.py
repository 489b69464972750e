"""FastAPI dependencies: the services of the process and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from modelcycle.access import Principal
from modelcycle.errors import AuthenticationError
from modelcycle.services import Services

_bearer = HTTPBearer(auto_error=False, description="An API key: mc_<prefix>_<secret>.")


async def get_services(request: Request) -> Services:
    """The services built by the app factory (async: FastAPI runs it on the loop, no thread)."""
    services: Services = request.app.state.services
    return services


def get_principal(
    services: Annotated[Services, Depends(get_services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller behind the Bearer key; 401 when there is none or it is not valid."""
    if credentials is None or not credentials.credentials:
        raise AuthenticationError("missing API key; pass 'Authorization: Bearer mc_...'")
    return services.access.authenticate(credentials.credentials)


async def inference_principal(request: Request) -> Principal:
    """The caller of an OpenAI-compatible request; 401 as for ``get_principal``.

    The hot path: a key seen within ``auth_cache_ttl_s`` is answered from memory
    on the event loop; only a miss reads the database, on a worker thread. It
    takes the request alone so that ``InferenceRoute`` can call it directly.
    """
    token = _bearer_token(request)
    if not token:
        raise AuthenticationError("missing API key; pass 'Authorization: Bearer mc_...'")
    services: Services = request.app.state.services
    cached = services.access.cached_principal(token)
    if cached is not None:
        return cached
    return await run_in_threadpool(services.access.authenticate, token)


def _bearer_token(request: Request) -> str | None:
    """What ``HTTPBearer(auto_error=False)`` reads, without building its pydantic model."""
    authorization = request.headers.get("Authorization")
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if not (scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


async def get_inference_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """``inference_principal`` as a dependency (``_bearer`` documents the scheme in OpenAPI)."""
    return await inference_principal(request)


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
InferencePrincipalDep = Annotated[Principal, Depends(get_inference_principal)]
CursorQuery = Annotated[
    str | None, Query(description="next_cursor of the previous page.", max_length=200)
]
LimitQuery = Annotated[int, Query(ge=1, le=500, description="Page size.")]
