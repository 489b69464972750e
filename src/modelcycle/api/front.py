"""The app, with the OpenAI routes' common case answered ahead of the middleware stack.

Every request to a FastAPI app passes six middleware layers before routing
(server errors, FastAPI's telemetry bridge, its body limit, ours, exceptions,
the exit stack) and FastAPI's router: under load, tens of microseconds a
request, a tenth of the gateway's CPU (docs/performance.md). ``InferenceApp``
answers a lean route's request (``inference_route.FastRoute``) with only the two
layers that shape its answers: Starlette's server-error and exception
middleware, built from the app's own exception handlers. Everything else takes
the whole stack, as before:

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

from modelcycle.api.inference_route import FastEndpoint, FastRoute, replay
from modelcycle.api.limits import BodySizeLimit

LEAN_BODY = "modelcycle.lean_body"
"""Scope key: the body of a request the lean path declined, to replay through the stack."""


class InferenceApp(FastAPI):
    """A ``FastAPI`` app serving its lean routes ahead of its middleware (module docstring)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.lean_routes: dict[tuple[str, str], ASGIApp] = {}
        """``(method, path)`` -> the two layers around that route's lean path; made from
        the router's ``FastRoute``s at the first request, empty when the app has other
        middleware."""
        self._lean_built = False
        self._body_limit: BodySizeLimit | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A lean route's request through two layers; anything else through all of them."""
        if scope["type"] == "http":
            if not self._lean_built:
                self._build_lean_routes()
            stack = self.lean_routes.get((scope["method"], scope["path"]))
            if stack is not None and self._skips_stack(scope):
                scope["app"] = self
                await stack(scope, receive, send)
                body = scope.pop(LEAN_BODY, None)
                if body is None:
                    return
                receive = replay(body, receive)  # declined: FastAPI answers below
        await super().__call__(scope, receive, send)

    def _skips_stack(self, scope: Scope) -> bool:
        """Whether the middleware has nothing to do for this request (module docstring)."""
        limit = self._body_limit
        return (
            limit is not None
            and not self.root_path
            and not scope.get("root_path")
            and limit.admits_as_is(scope)
        )

    def _build_lean_routes(self) -> None:
        """The two layers around each lean route, from the handlers as Starlette builds them."""
        self._lean_built = True
        middleware: list[Any] = list(self.user_middleware)
        if len(middleware) != 1 or middleware[0].cls is not BodySizeLimit:
            return  # other middleware must see every request
        options = middleware[0]  # the same limits, to check them here
        self._body_limit = BodySizeLimit(self.router, *options.args, **options.kwargs)
        error_handler = None
        handlers: dict[Any, Any] = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        for route in self.router.routes:
            if isinstance(route, FastRoute):
                stack = ServerErrorMiddleware(
                    ExceptionMiddleware(_Lean(route.lean_endpoint), handlers, debug=self.debug),
                    handler=error_handler,
                    debug=self.debug,
                )
                for method in route.methods or ():
                    self.lean_routes[method, route.path] = stack


class _Lean:
    """The innermost layer: one route's lean path; a declined body is left for the stack."""

    def __init__(self, endpoint: FastEndpoint):
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self.endpoint.serve(scope, receive, send)
        if body is not None:
            scope[LEAN_BODY] = body
