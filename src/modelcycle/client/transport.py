"""What both clients share: configuration, headers and reading error answers."""

from __future__ import annotations

import os
from typing import Any

import httpx

from modelcycle.errors import (
    AuthenticationError,
    Conflict,
    InvalidInput,
    ModelcycleError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServerError,
    StoreError,
)
from modelcycle.version import __version__

DEFAULT_SERVER = "http://127.0.0.1:8000"
SERVER_ENV = "MODELCYCLE_SERVER"
API_KEY_ENV = "MODELCYCLE_API_KEY"

_BY_STATUS: dict[int, type[ModelcycleError]] = {
    400: InvalidInput,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
    503: StoreError,
}


def resolve_server(server: str | None) -> str:
    """The server URL: the argument, else ``MODELCYCLE_SERVER``, else the local default."""
    url = (server or os.environ.get(SERVER_ENV) or DEFAULT_SERVER).rstrip("/")
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        # Not an httpx.HTTPError, so a request would escape the connection-error mapping.
        raise InvalidInput(
            f"invalid server URL {url!r} ({exc}); pass e.g. --server http://127.0.0.1:8000"
        ) from exc
    return url


def resolve_api_key(api_key: str | None) -> str | None:
    """The API key: the argument, else ``MODELCYCLE_API_KEY``."""
    return api_key or os.environ.get(API_KEY_ENV) or None


def headers(api_key: str | None) -> dict[str, str]:
    """Headers sent with every request (the key only as a Bearer credential)."""
    out = {"User-Agent": f"modelcycle-python/{__version__}", "Accept": "application/json"}
    if api_key:
        out["Authorization"] = f"Bearer {api_key}"
    return out


def raise_for_error(response: httpx.Response) -> None:
    """Raise the ``ModelcycleError`` subclass matching an error answer."""
    if response.status_code < 400:
        return
    message, param, code = _error_fields(response)
    error_class = _BY_STATUS.get(response.status_code, ServerError)
    raise error_class(message, param=param, code=code)


def _error_fields(response: httpx.Response) -> tuple[str, str | None, str | None]:
    try:
        body: Any = response.json()
        error = body["error"]
        return str(error["message"]), error.get("param"), error.get("code")
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:200] or response.reason_phrase
        return f"server answered {response.status_code}: {text}", None, None


def connection_error(server: str, exc: httpx.HTTPError) -> ServerError:
    """A one-line error for a server that cannot be reached."""
    return ServerError(
        f"cannot reach modelcycle at {server} ({type(exc).__name__}); start it with "
        "'modelcycle up' or pass --server / MODELCYCLE_SERVER",
        code="connection_error",
    )
