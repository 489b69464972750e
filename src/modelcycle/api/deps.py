"""FastAPI dependencies: the services of the process and the authenticated caller.

Both ways in (``get_principal`` for the management API, ``inference_principal``
for ``/v1``) first refuse an address blocked for failing to authenticate too
often, then count each failure (``modelcycle.access.throttle``).
"""

from __future__ import annotations

from typing import Annotated, NoReturn

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelcycle.access import Principal
from modelcycle.access.throttle import AuthThrottle, client_address
from modelcycle.errors import AuthenticationError
from modelcycle.services import Services

_bearer = HTTPBearer(auto_error=False, description="An API key: mc_<prefix>_<secret>.")
_MISSING = "missing API key; pass 'Authorization: Bearer mc_...'"


async def get_services(request: Request) -> Services:
    """The services built by the app factory (async: FastAPI runs it on the loop, no thread)."""
    services: Services = request.app.state.services
    return services


def get_principal(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller behind the Bearer key; 401 when there is none or it is not valid."""
    throttle = services.access.throttle
    if throttle.blocked:
        throttle.check(client_address(request.scope))
    if credentials is None or not credentials.credentials:
        _refuse_missing(request, throttle)
    try:
        return services.access.authenticate(credentials.credentials)
    except AuthenticationError:
        throttle.failed(client_address(request.scope))
        raise


async def inference_principal(request: Request) -> Principal:
    """The caller of an OpenAI-compatible request; 401 as for ``get_principal``.

    The hot path: a key seen within ``auth_cache_ttl_s`` is answered from memory
    on the event loop; only a miss reads the database, on a worker thread, once
    however many requests present the key (``authenticate_cached``). It
    takes the request alone so that ``InferenceRoute`` can call it directly.
    """
    services: Services = request.app.state.services
    access = services.access
    if access.throttle.blocked:  # else nothing is blocked: no address to work out
        access.throttle.check(client_address(request.scope))
    token = _bearer_token(request)
    if not token:
        _refuse_missing(request, access.throttle)
    try:
        return await access.authenticate_cached(token)
    except AuthenticationError:
        access.throttle.failed(client_address(request.scope))
        raise


def _refuse_missing(request: Request, throttle: AuthThrottle) -> NoReturn:
    """401; an ``Authorization`` header that is there but unusable counts as a failure."""
    if request.headers.get("Authorization") is not None:
        throttle.failed(client_address(request.scope))
    raise AuthenticationError(_MISSING)


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
