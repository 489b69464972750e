"""Who is looking at a page, and whether a form post really comes from one of ours.

A page's dependency resolves the session cookie to the key it acts as (a
database read: revoking the key ends the session). A form post must also carry
the session's CSRF token (hidden field ``csrf`` or header ``X-CSRF-Token``) and,
when the browser sends one, an ``Origin`` of this server; the cookie itself is
``SameSite=Strict`` as a second line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from modelcycle.access import Principal
from modelcycle.access.ui_sessions import SESSION_TTL, UiSessions, csrf_matches, csrf_token
from modelcycle.errors import PermissionDenied
from modelcycle.services import Services
from modelcycle.ui.routing import SignInRequired

SESSION_COOKIE = "mc_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in caller of a page: the principal the services check, and the CSRF token."""

    principal: Principal
    csrf: str
    services: Services


def ui_sessions(request: Request) -> UiSessions:
    """The session store the dashboard was installed with."""
    sessions: UiSessions = request.app.state.ui_sessions
    return sessions


def session_token(request: Request) -> str | None:
    """The session cookie, if any."""
    return request.cookies.get(SESSION_COOKIE)


def current_viewer(request: Request) -> Viewer:
    """The signed-in caller; ``SignInRequired`` when there is none (sync: reads the DB)."""
    token = session_token(request)
    principal = ui_sessions(request).principal(token)
    if principal is None or token is None:
        raise SignInRequired
    viewer = Viewer(
        principal=principal, csrf=csrf_token(token), services=request.app.state.services
    )
    request.state.viewer = viewer
    return viewer


def check_origin(request: Request) -> None:
    """403 when the browser says the form comes from another site."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin != expected:
            raise PermissionDenied("this form was posted from another site; reload the page")


async def checked_form(request: Request) -> None:
    """403 unless a state-changing request carries this session's CSRF token and origin."""
    check_origin(request)
    token = session_token(request)
    if token is None:
        raise SignInRequired
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not csrf_matches(token, presented):
        raise PermissionDenied("this form has expired or was not sent by the dashboard; reload")


def set_session_cookie(response: Response, token: str, *, secure: bool) -> None:
    """HttpOnly (no script reads it), SameSite=Strict, Secure over HTTPS."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    """Forget the cookie in the browser."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


ViewerDep = Annotated[Viewer, Depends(current_viewer)]
"""A page's signed-in caller."""
FormChecked = Depends(checked_form)
"""Add to a POST route's ``dependencies``: CSRF and origin checked before it runs."""
