"""Page routes: platform errors become HTML pages, a missing session a sign-in redirect.

The API's handlers answer ``ModelcycleError`` with JSON; a person in a browser
gets the same status code with a readable page instead.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from modelcycle.errors import ModelcycleError
from modelcycle.ui.render import renderer


class SignInRequired(Exception):
    """No live session: a page redirects to the sign-in form, a form post gets 401."""


class UiRoute(APIRoute):
    """An ``APIRoute`` whose failures render as pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler with the dashboard's error pages."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                if request.method in ("GET", "HEAD"):
                    target = request.url.path
                    if request.url.query:
                        target += "?" + request.url.query
                    return RedirectResponse(f"/login?next={quote(target, safe='')}", 303)
                return error_page(request, 401, "Your session is over: sign in again.")
            except ModelcycleError as exc:
                return error_page(request, exc.status_code, exc.message)
            except RequestValidationError as exc:
                return error_page(request, 422, _validation_message(exc))

        return handle


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(
            str(part) for part in error.get("loc", ()) if part not in ("query", "body")
        )
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
    return "; ".join(parts) or "invalid input"


def error_page(request: Request, status: int, message: str) -> Response:
    """The error page, with the status code an API client would have had."""
    return renderer(request).page(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )
