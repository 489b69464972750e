"""The floor for a Python gateway: a bare pass-through proxy with no features.

``shared/bench/passthrough.py`` (Starlette + aiohttp, one pooled session, the
body forwarded unchanged), plus one thing the streaming benchmark needs: a
request asking for ``"stream": true`` is relayed chunk by chunk as it arrives,
so that its time to first byte is a fair floor for the gateway's.

    uvicorn passthrough:app --port 9200 --no-access-log --log-level warning
    (UPSTREAM_URL defaults to http://127.0.0.1:9100)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:9100")
_HEADERS = {"content-type": "application/json"}
_sessions: list[aiohttp.ClientSession] = []


def session() -> aiohttp.ClientSession:
    if not _sessions:
        _sessions.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)))
    return _sessions[0]


async def forward(request: Request) -> Response:
    body = await request.body()
    url = UPSTREAM + request.url.path
    if b'"stream": true' in body or b'"stream":true' in body:
        upstream = await session().post(url, data=body, headers=_HEADERS)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for piece in upstream.content.iter_any():
                    yield piece
            finally:
                upstream.release()

        return StreamingResponse(
            relay(), status_code=upstream.status, media_type="text/event-stream"
        )
    async with session().post(url, data=body, headers=_HEADERS) as answer:
        data = await answer.read()
        return Response(
            data, status_code=answer.status, media_type=answer.headers.get("content-type")
        )


app = Starlette(routes=[Route("/v1/chat/completions", forward, methods=["POST"])])
