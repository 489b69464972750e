"""A lean request handler for the OpenAI routes, with FastAPI's own handler behind it.

For every request FastAPI resolves the dependency graph, reads and validates
the body and opens telemetry spans; on ``/v1`` that machinery cost more CPU than
the gateway itself (docs/performance.md). ``InferenceRoute`` is an ``APIRoute``
(same OpenAPI document, same exception handlers around it) whose handler does
the common case directly: a JSON body that validates and dependencies from a
short list of known ones, each taking only the request. Everything else goes
to FastAPI's handler for the same request:

* a content type other than ``application/json``, a body orjson cannot parse or
  one that fails validation: FastAPI answers, so errors are exactly its own
  (authentication still comes first, as in FastAPI, where a dependency's error
  wins over the body's validation errors);
* an endpoint with any parameter or dependency not on the list, or an app with
  ``dependency_overrides``: the route never takes the lean path at all.

``install_fast_routes`` also serves the lean path from a plain Starlette route
placed ahead of FastAPI's router (``FastRoute``) and, on an ``InferenceApp``,
ahead of the whole middleware stack (``modelcycle.api.front``); every answer is
cancelled when its client disconnects first (``modelcycle.api.disconnect``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from modelcycle.api.deps import get_inference_principal, get_services, inference_principal
from modelcycle.api.disconnect import CLIENT_CLOSED, unless_disconnected

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
LeanHandler = Callable[[Request], Awaitable[Response | None]]
LEAN_TRIED = "modelcycle.lean_tried"
"""Scope key: the lean path declined this request; FastAPI's handler answers it."""
RequestDependency = Callable[[Request], Awaitable[Any]]

LEAN_DEPENDENCIES: dict[Callable[..., Any], RequestDependency] = {
    get_services: get_services,
    get_inference_principal: inference_principal,
}
"""Dependencies the lean path resolves itself, each by an ``async def f(request)``
that does what the dependency and its own sub-dependencies do."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to call the endpoint without FastAPI: its body model and dependencies."""

    body_name: str
    body_model: type[BaseModel]
    dependencies: tuple[tuple[str, RequestDependency], ...]
    request_name: str | None


def _plan(dependant: Dependant) -> _Plan | None:
    """The lean plan of an endpoint, ``None`` when it needs anything FastAPI provides."""
    if (
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or len(dependant.body_params) != 1
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    ):
        return None
    field = dependant.body_params[0]
    model = field.field_info.annotation
    embedded = bool(getattr(field.field_info, "embed", False))
    if embedded or not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    dependencies = []
    for sub in dependant.dependencies:
        lean = LEAN_DEPENDENCIES.get(sub.call) if sub.call is not None else None
        if sub.name is None or lean is None:
            return None
        dependencies.append((sub.name, lean))
    return _Plan(field.name, model, tuple(dependencies), dependant.request_param_name)


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.partition(";")[0].strip().lower() == "application/json"


class InferenceRoute(APIRoute):
    """An ``APIRoute`` whose common case skips FastAPI's per-request machinery.

    ``lean`` is that common case: a ``Response``, or ``None`` when FastAPI's own
    handler must answer. ``FastRoute`` serves it ahead of FastAPI's routing.
    """

    lean: LeanHandler | None = None

    def get_route_handler(self) -> Handler:
        """The lean handler, falling back to FastAPI's for anything unusual."""
        full = super().get_route_handler()
        plan = _plan(self.dependant)
        lean = None
        if plan is not None and inspect.iscoroutinefunction(self.endpoint):
            lean = self.lean = _lean_handler(plan, self.endpoint)

        async def handler(request: Request) -> Response:
            try:
                await request.body()  # read first: the watcher must only see the disconnect
            except ClientDisconnect:
                return Response(status_code=CLIENT_CLOSED)
            return await unless_disconnected(request, answer)

        async def answer(request: Request) -> Response:
            if lean is not None and not request.scope.get(LEAN_TRIED):
                response = await lean(request)
                if response is not None:
                    return response
            return await full(request)

        return handler


def _lean_handler(plan: _Plan, endpoint: Callable[..., Awaitable[Response]]) -> LeanHandler:
    async def lean(request: Request) -> Response | None:
        if request.app.dependency_overrides or not _is_json(request):
            return None
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return None  # FastAPI's parser and its 400
        values: dict[str, Any] = {}
        for name, dependency in plan.dependencies:
            values[name] = await dependency(request)
        try:
            values[plan.body_name] = plan.body_model.model_validate(data)
        except ValidationError:
            return None  # FastAPI's validation errors
        if plan.request_name is not None:
            values[plan.request_name] = request
        return await endpoint(**values)

    return lean


class FastRoute(Route):
    """The lean path of an ``InferenceRoute``, matched before FastAPI's routing.

    ``lean_endpoint`` is its ``FastEndpoint`` (``front.InferenceApp`` serves it too).

    FastAPI's router, its included-router lookup and its per-route wrappers cost
    tens of microseconds a request; this plain Starlette route answers the
    common case with the same code. When the lean path declines, the request
    (its body replayed) goes back to the router, which this route then lets
    pass to the ``InferenceRoute`` and FastAPI's handler.
    """

    def __init__(self, route: InferenceRoute):
        assert route.lean is not None
        self.lean_endpoint = FastEndpoint(route.lean)
        super().__init__(
            route.path,
            self.lean_endpoint,
            methods=sorted(route.methods or ()),
            name=route.name,
            include_in_schema=False,
        )

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """No match for a request the lean path has declined already."""
        if scope.get(LEAN_TRIED):
            return Match.NONE, {}
        return super().matches(scope)


class FastEndpoint:
    """An ASGI app: the lean path, else the request back to the router."""

    def __init__(self, lean: LeanHandler):
        self.lean = lean

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request; one the lean path declines goes to the router (FastAPI)."""
        body = await self.serve(scope, receive, send)
        if body is not None:
            await scope["router"](scope, replay(body, receive), send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """Answer the request; or, when the lean path declines it, the body read (to replay)."""
        request = Request(scope, receive, send)
        try:
            body = await request.body()  # read first: the watcher must only see the disconnect
        except ClientDisconnect:
            return None
        response = await unless_disconnected(request, self.lean)
        if response is None:
            scope[LEAN_TRIED] = True
            return body
        await response(scope, receive, send)
        return None


def replay(body: bytes, receive: Receive) -> Receive:
    """``receive``, with the body already read given again first."""
    replayed = False

    async def again() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


def install_fast_routes(app: FastAPI, router: APIRouter) -> None:
    """Serve the lean path of each ``InferenceRoute`` of ``router`` ahead of FastAPI's routing.

    The ``InferenceRoute`` stays in place for the OpenAPI document and for
    what the lean path declines.
    """
    fast = [FastRoute(r) for r in router.routes if isinstance(r, InferenceRoute) and r.lean]
    app.router.routes[0:0] = fast
