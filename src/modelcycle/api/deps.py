"""FastAPI dependencies: the services of the process and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelcycle.access import Principal
from modelcycle.errors import AuthenticationError
from modelcycle.services import Services

_bearer = HTTPBearer(auto_error=False, description="An API key: mc_<prefix>_<secret>.")


def get_services(request: Request) -> Services:
    """The services built by the app factory."""
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


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
CursorQuery = Annotated[
    str | None, Query(description="next_cursor of the previous page.", max_length=200)
]
LimitQuery = Annotated[int, Query(ge=1, le=500, description="Page size.")]
