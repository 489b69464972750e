"""Cancelling a request whose client went away before its answer was ready.

Starlette never cancels an endpoint whose client disconnected: without this, a
backend call would run to its end for nobody. The request's task is cancelled,
so the gateway records it as ``cancelled`` (499) and closes the upstream call.
Watching costs a task, so it starts only once a request has run
``WATCH_AFTER_S`` (a disconnect is then noticed at most that late). A streamed
answer, once it has begun, is watched by ``StreamingResponse`` itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

CLIENT_CLOSED = 499  # the nginx convention, as the gateway's events use
WATCH_AFTER_S = 0.05
"""Requests that answer sooner are never watched for a disconnect."""

R = TypeVar("R", bound=Response | None)


async def unless_disconnected(
    request: Request, handler: Callable[[Request], Awaitable[R]]
) -> R | Response:
    """``handler(request)``, or a bare 499 when the client disconnects first.

    The request's body must have been read already: the watcher may only ever
    receive the disconnect.
    """
    loop = asyncio.get_running_loop()  # once: each lookup is a getpid() system call
    task = asyncio.current_task(loop)
    assert task is not None
    watch = _Watch(request, task)
    timer = loop.call_later(WATCH_AFTER_S, watch.start)
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
