"""The app, with the OpenAI routes' common case answered ahead of the middleware stack.

Every request to a FastAPI app passes six middleware layers before routing
(server errors, FastAPI's telemetry bridge, its body limit, ours, exceptions,
the exit stack) and FastAPI's router: under load, tens of microseconds a
request, a tenth of the gateway's CPU (docs/performance.md). ``InferenceApp``
answers a lean route's request (``inference_route``) with only the two layers
that shape its answers: Starlette's server-error and exception middleware,
built from the app's own exception handlers. Everything else takes the whole
stack, as before:

* any path or method other than a lean route's, and lifespan events;
* a body whose length is not declared, or over the limit, or a URL with NUL
  (``BodySizeLimit`` answers those);
* an app with middleware other than ``BodySizeLimit``, or a ``root_path``;
* a request the lean path declines (validation errors, other content types):
  it is replayed through the whole stack and FastAPI answers.

FastAPI's OpenTelemetry bridge does not see the lean requests: their traces are
modelcycle's own (``modelcycle.monitor``, exported over OTLP with ``[otel]``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from modelcycle.api.inference_route import FastEndpoint, replay
from modelcycle.api.limits import BodySizeLimit, declared_length, has_nul

LEAN_BODY = "modelcycle.lean_body"
"""Scope key: the body of a request the lean path declined, to replay through the stack."""


class InferenceApp(FastAPI):
    """A ``FastAPI`` app serving its lean routes ahead of its middleware (module docstring)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.lean_routes: dict[tuple[str, str], FastEndpoint] = {}
        """``(method, path)`` -> the lean path of that route (``install_fast_routes``)."""
        self._lean_stack: ASGIApp | None = None
        self._body_limit: BodySizeLimit | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A lean route's request through two layers; anything else through all of them."""
        if scope["type"] == "http" and self.lean_routes:
            endpoint = self.lean_routes.get((scope["method"], scope["path"]))
            if endpoint is not None and self._lean_ready(scope):
                assert self._lean_stack is not None
                scope["app"] = self
                await self._lean_stack(scope, receive, send)
                body = scope.pop(LEAN_BODY, None)
                if body is None:
                    return
                receive = replay(body, receive)  # declined: FastAPI answers below
        await super().__call__(scope, receive, send)

    def _lean_ready(self, scope: Scope) -> bool:
        """Whether this request may skip the middleware stack (see the module docstring)."""
        if self._lean_stack is None and not self._build_lean_stack():
            return False
        limit = self._body_limit
        if limit is None or self.root_path or scope.get("root_path") or has_nul(scope):
            return False
        declared = declared_length(scope)
        return declared is not None and declared <= limit.limit_for(scope["path"])

    def _build_lean_stack(self) -> bool:
        """The two layers, from the app's handlers as Starlette builds them; once."""
        middleware: list[Any] = list(self.user_middleware)
        if len(middleware) != 1 or middleware[0].cls is not BodySizeLimit:
            self.lean_routes = {}  # other middleware must see every request
            return False
        options = middleware[0]  # the same limits, to check them here
        self._body_limit = BodySizeLimit(self.router, *options.args, **options.kwargs)
        error_handler = None
        handlers: dict[Any, Any] = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        self._lean_stack = ServerErrorMiddleware(
            ExceptionMiddleware(_Dispatch(self), handlers=handlers, debug=self.debug),
            handler=error_handler,
            debug=self.debug,
        )
        return True


class _Dispatch:
    """The innermost layer: the lean route of the request's method and path."""

    def __init__(self, app: InferenceApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.app.lean_routes[scope["method"], scope["path"]]
        body = await endpoint.serve(scope, receive, send)
        if body is not None:
            scope[LEAN_BODY] = body
