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
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from modelcycle.api.deps import get_inference_principal, get_services, inference_principal

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
CLIENT_CLOSED = 499  # the nginx convention, as the gateway's events use
WATCH_AFTER_S = 0.05
"""Requests that answer sooner are never watched for a disconnect (see below)."""
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
    """An ``APIRoute`` whose common case skips FastAPI's per-request machinery."""

    def get_route_handler(self) -> Handler:
        """The lean handler, falling back to FastAPI's for anything unusual."""
        full = super().get_route_handler()
        plan = _plan(self.dependant)
        if plan is None or not inspect.iscoroutinefunction(self.endpoint):
            return _cancelled_on_disconnect(full)
        endpoint: Callable[..., Awaitable[Response]] = self.endpoint

        async def handler(request: Request) -> Response:
            if request.app.dependency_overrides or not _is_json(request):
                return await full(request)
            try:
                data = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                return await full(request)  # FastAPI's parser and its 400
            values: dict[str, Any] = {}
            for name, dependency in plan.dependencies:
                values[name] = await dependency(request)
            try:
                values[plan.body_name] = plan.body_model.model_validate(data)
            except ValidationError:
                return await full(request)  # FastAPI's validation errors
            if plan.request_name is not None:
                values[plan.request_name] = request
            return await endpoint(**values)

        return _cancelled_on_disconnect(handler)


def _cancelled_on_disconnect(handler: Handler) -> Handler:
    """``handler``, cancelled when the client disconnects before it has an answer.

    Starlette never cancels an endpoint whose client went away; without this, a
    backend call would run to its end for nobody. The request is cancelled like
    any task, so the gateway records it as ``cancelled`` (499) and closes the
    upstream call. Watching costs a task, so it starts only once the request has
    run ``WATCH_AFTER_S`` (a disconnect is then seen at most that late); a
    streamed answer is watched by ``StreamingResponse`` itself once it has begun.
    """

    async def watched(request: Request) -> Response:
        try:
            await request.body()  # read first: the watcher must only ever see the disconnect
        except ClientDisconnect:
            return Response(status_code=CLIENT_CLOSED)
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(request, task)
        timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, watch.start)
        try:
            return await handler(request)
        except asyncio.CancelledError:
            if not watch.fired:
                raise  # cancelled by someone else (server shutdown): not ours to absorb
            task.uncancel()
            return Response(status_code=CLIENT_CLOSED)  # nobody is left to read it
        finally:
            timer.cancel()
            watch.stop()

    return watched


class _Watch:
    """Cancels ``task`` when the client of ``request`` disconnects (once started)."""

    def __init__(self, request: Request, task: asyncio.Task[Any]):
        self.request, self.task = request, task
        self.watcher: asyncio.Task[None] | None = None
        self.fired = False

    def start(self) -> None:
        self.watcher = asyncio.get_running_loop().create_task(self._watch())

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()

    async def _watch(self) -> None:
        # Once the body is read, the only message the ASGI spec leaves is the disconnect.
        if (await self.request.receive())["type"] == "http.disconnect":
            self.fired = True
            self.task.cancel()
