"""Trace attributes a client sends in headers: user, session, metadata, ``traceparent``."""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.requests import Request

from modelcycle.errors import InvalidInput
from modelcycle.gateway.schemas import NO_CONTEXT, CallContext

USER_HEADER = b"x-modelcycle-user"
SESSION_HEADER = b"x-modelcycle-session"
METADATA_HEADER = b"x-modelcycle-metadata"
TRACEPARENT_HEADER = b"traceparent"
_WANTED = frozenset({USER_HEADER, SESSION_HEADER, METADATA_HEADER, TRACEPARENT_HEADER})
MAX_ID_LENGTH = 128
MAX_METADATA_BYTES = 4096
# W3C trace context: version-traceid-parentid-flags; all-zero ids are invalid.
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def call_context(request: Request) -> CallContext:
    """The request's trace attributes; a 400 for a malformed user, session or metadata.

    A malformed ``traceparent`` is ignored, as the W3C specification asks.
    """
    found: dict[bytes, str] = {}
    for name, value in request.scope["headers"]:
        if name in _WANTED:
            found[name] = value.decode("latin-1")
    if not found:
        return NO_CONTEXT
    trace_id = parent = None
    match = _TRACEPARENT.match(found.get(TRACEPARENT_HEADER, "").strip().lower())
    if match and set(match[1]) != {"0"} and set(match[2]) != {"0"}:
        trace_id, parent = match[1], match[2]
    return CallContext(
        user=_identifier(found, USER_HEADER),
        session=_identifier(found, SESSION_HEADER),
        metadata=_metadata(found.get(METADATA_HEADER)),
        trace_id=trace_id,
        parent_span_id=parent,
    )


def _identifier(found: dict[bytes, str], header: bytes) -> str | None:
    value = found.get(header)
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_ID_LENGTH:
        raise InvalidInput(
            f"header {header.decode()} must be 1 to {MAX_ID_LENGTH} characters",
            param=header.decode(),
        )
    return value


def _metadata(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    if len(raw) > MAX_METADATA_BYTES:
        raise InvalidInput(
            f"header x-modelcycle-metadata is over {MAX_METADATA_BYTES} bytes",
            param="x-modelcycle-metadata",
        )
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput(
            'header x-modelcycle-metadata must be a JSON object, e.g. {"feature": "search"}',
            param="x-modelcycle-metadata",
        )
    return value
