"""ASGI middleware: 413 for bodies over the size limit, 400 for NUL bytes in the URL."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised inside the app when a streamed body passes the limit.

    An ``HTTPException``: FastAPI re-raises those from body parsing (any other
    error there becomes a generic 400), so the app's handler answers 413.
    """

    code = "body_too_large"

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request body is larger than {max_bytes} bytes")


class BodySizeLimit:
    """Refuse bodies over ``max_bytes``: by Content-Length up front, else while streaming.

    ``path_limits`` gives some paths a limit of their own (OTLP batches are larger);
    ``prefix_limits`` every path under a prefix (dataset uploads).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        path_limits: Mapping[str, int] | None = None,
        prefix_limits: Mapping[str, int] | None = None,
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})
        self.prefix_limits = dict(prefix_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count the bytes actually received."""
        if scope["type"] != "http" or self.admits_as_is(scope):
            await self.app(scope, receive, send)
            return
        if _has_nul(scope):
            # Neither database can store NUL in text; refuse it before any lookup.
            await _send_error(send, 400, "the URL contains a NUL character (%00)", "nul_in_url")
            return
        max_bytes = self.limit_for(scope.get("path", ""))
        declared = _declared_length(scope)
        if declared is not None and declared > max_bytes:
            await self._refuse(send, max_bytes)
            return
        await self._counted(scope, receive, send, max_bytes)

    def admits_as_is(self, scope: Scope) -> bool:
        """Whether an HTTP request needs nothing from this middleware.

        No NUL in its URL, and a declared body length within the limit: the server
        reads exactly that length (more would be the next request), so there is
        nothing to count and no wrapper belongs on the request's path.
        """
        if _has_nul(scope):
            return False
        declared = _declared_length(scope)
        return declared is not None and declared <= self.limit_for(scope.get("path", ""))

    async def _counted(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        """The app, with the body counted as it arrives (chunked, or its length unsaid)."""
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, max_bytes)

    def limit_for(self, path: str) -> int:
        """The largest body accepted on ``path``."""
        found = self.path_limits.get(path)
        if found is not None:
            return found
        for prefix, limit in self.prefix_limits.items():
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def _refuse(self, send: Send, max_bytes: int) -> None:
        message = f"request body is larger than {max_bytes} bytes"
        await _send_error(send, 413, message, "body_too_large")


def _declared_length(scope: Scope) -> int | None:
    """The body's ``Content-Length``; ``None`` when the body is chunked or its length unsaid."""
    length = None
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding":
            return None
        if name == b"content-length" and value.isdigit():
            length = int(value)
    return length


def _has_nul(scope: Scope) -> bool:
    """Whether the URL carries a NUL character (raw or ``%00``)."""
    return b"%00" in scope.get("query_string", b"").lower() or "\x00" in scope.get("path", "")


async def _send_error(send: Send, status: int, message: str, code: str) -> None:
    """Answer with the shared JSON error shape without entering the app."""
    body = orjson.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
