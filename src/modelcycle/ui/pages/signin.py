"""Sign in with an API key, sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from modelcycle.access.throttle import client_address
from modelcycle.errors import AuthenticationError, PermissionDenied
from modelcycle.ui.auth import (
    FormChecked,
    check_origin,
    clear_session_cookie,
    session_token,
    set_session_cookie,
    ui_sessions,
)
from modelcycle.ui.render import renderer
from modelcycle.ui.routing import UiRoute

router = APIRouter(route_class=UiRoute)


def safe_next(target: str | None) -> str:
    """Only a path of this site: an open redirect would help phishing."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def signin_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form (already signed in: straight on)."""
    if ui_sessions(request).principal(session_token(request)) is not None:
        return RedirectResponse(safe_next(next), 303)
    return renderer(request).page(request, "signin.html", {"next": safe_next(next)})


@router.post("/login")
async def signin(
    request: Request,
    api_key: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Exchange a key for a session cookie; a wrong key is counted like an API failure."""
    check_origin(request)
    services = request.app.state.services
    throttle = services.access.throttle
    address = client_address(request.scope)
    if throttle.blocked:
        throttle.check(address)
    try:
        signed = await run_in_threadpool(ui_sessions(request).sign_in, api_key.strip())
    except (AuthenticationError, PermissionDenied) as exc:
        if isinstance(exc, AuthenticationError):
            throttle.failed(address)
        return renderer(request).page(
            request,
            "signin.html",
            {"next": safe_next(next), "error": exc.message},
            status_code=exc.status_code,
        )
    response = RedirectResponse(safe_next(next), 303)
    set_session_cookie(response, signed.token, secure=request.url.scheme == "https")
    return response


@router.post("/logout", dependencies=[FormChecked])
async def signout(request: Request) -> Response:
    """End the session here and in the database."""
    await run_in_threadpool(ui_sessions(request).sign_out, session_token(request))
    response = RedirectResponse("/login", 303)
    clear_session_cookie(response)
    return response
