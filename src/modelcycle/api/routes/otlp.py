"""``POST /v1/traces``: OTLP/HTTP trace ingest for OpenTelemetry, OpenLLMetry and OpenInference.

Point any OTLP/HTTP exporter at ``{server}/v1/traces`` with the header
``Authorization: Bearer <key>`` (any role; ``app`` is enough). Answers follow the
OTLP/HTTP specification: 200 with an ``ExportTraceServiceResponse`` in the
request's encoding (``partial_success.rejected_spans`` counts spans the
recorder's full queue refused), 400 for a malformed payload (nothing stored; a
``google.rpc.Status`` for protobuf requests, the JSON error shape otherwise),
413 for a body over ``otlp_max_body_bytes``, 415 for another content type.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from modelcycle.api.deps import InferencePrincipalDep, ServicesDep
from modelcycle.api.errors import ERROR_RESPONSES, ErrorResponse
from modelcycle.errors import ModelcycleError
from modelcycle.monitor import otlp

router = APIRouter(prefix="/v1", tags=["otlp"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_ANY_VALUE: dict[str, Any] = {
    "type": "object",
    "description": "One of the fields (arrayValue and kvlistValue nest AnyValues).",
    "properties": {
        "stringValue": {"type": "string"},
        "boolValue": {"type": "boolean"},
        "intValue": {"type": ["integer", "string"]},
        "doubleValue": {"type": "number"},
        "bytesValue": {"type": "string"},
        "arrayValue": {"type": "object"},
        "kvlistValue": {"type": "object"},
    },
}
_ATTRIBUTES = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["key"],
        "properties": {"key": {"type": "string"}, "value": _ANY_VALUE},
    },
}
_NANOS = {"type": ["integer", "string"], "description": "Nanoseconds since the Unix epoch."}
_SPAN = {
    "type": "object",
    "required": ["traceId", "spanId", "name", "startTimeUnixNano", "endTimeUnixNano"],
    "properties": {
        "traceId": {"type": "string", "description": "32 hex digits."},
        "spanId": {"type": "string", "description": "16 hex digits."},
        "parentSpanId": {"type": "string", "description": "16 hex digits; empty for a root."},
        "name": {"type": "string"},
        "kind": {"type": "integer"},
        "startTimeUnixNano": _NANOS,
        "endTimeUnixNano": _NANOS,
        "attributes": _ATTRIBUTES,
        "events": {"type": "array", "items": {"type": "object"}},
        "status": {
            "type": "object",
            "properties": {
                "code": {"type": "integer", "description": "0 unset, 1 ok, 2 error."},
                "message": {"type": "string"},
            },
        },
    },
}
_EXPORT_REQUEST = {
    "type": "object",
    "description": "An OTLP/JSON ExportTraceServiceRequest.",
    "properties": {
        "resourceSpans": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "resource": {"type": "object", "properties": {"attributes": _ATTRIBUTES}},
                    "scopeSpans": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "scope": {"type": "object"},
                                "spans": {"type": "array", "items": _SPAN},
                            },
                        },
                    },
                },
            },
        }
    },
}


class OtlpPartialSuccess(BaseModel):
    """Spans the server accepted the request for but did not keep."""

    model_config = ConfigDict(populate_by_name=True)

    rejected_spans: int = Field(alias="rejectedSpans")
    error_message: str = Field(default="", alias="errorMessage")


class OtlpExportResponse(BaseModel):
    """The OTLP/JSON answer; empty when every span was accepted."""

    model_config = ConfigDict(populate_by_name=True)

    partial_success: OtlpPartialSuccess | None = Field(default=None, alias="partialSuccess")


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": OtlpExportResponse,
        "description": "Accepted; in the request's encoding.",
        "content": {"application/x-protobuf": _BINARY},
    },
    400: {
        "model": ErrorResponse,
        "description": "Malformed payload; nothing was stored. A google.rpc.Status for "
        "protobuf requests.",
        "content": {"application/x-protobuf": _BINARY},
    },
    401: ERROR_RESPONSES[401],
    413: ERROR_RESPONSES[413],
    415: {"model": ErrorResponse, "description": "Neither application/x-protobuf nor JSON."},
}


@router.post(
    "/traces",
    response_class=Response,
    responses=_RESPONSES,
    summary="Export spans (OTLP/HTTP)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-protobuf": _BINARY,
                "application/json": {"schema": _EXPORT_REQUEST},
            },
        }
    },
)
async def export_traces(
    request: Request, services: ServicesDep, principal: InferencePrincipalDep
) -> Response:
    """Store the spans of an OTLP ``ExportTraceServiceRequest`` in the caller's project."""
    encoding = otlp.encoding_of(request.headers.get("content-type"))
    if encoding is None:
        raise HTTPException(415, "send OTLP as application/x-protobuf or application/json")
    content_encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if content_encoding not in {"identity", "gzip"}:
        raise HTTPException(415, f"Content-Encoding {content_encoding!r}: use gzip or none")
    body = await request.body()
    settings = services.settings
    try:
        # Decoding thousands of spans is CPU work: off the event loop.
        spans = await run_in_threadpool(
            otlp.decode,
            body,
            encoding,
            project_id=principal.project_id,
            max_bytes=settings.otlp_max_body_bytes,
            gzipped=content_encoding == "gzip",
            content=settings.trace_content,
            key_id=principal.key_id,
        )
    except ModelcycleError as exc:
        if encoding != "protobuf":
            raise
        return Response(
            otlp.error_status(exc.message),
            status_code=exc.status_code,
            media_type=otlp.MEDIA_TYPES["protobuf"],
        )
    accepted = services.recorder.submit_many(spans)
    rejected = len(spans) - accepted
    message = "the trace queue is full; retry later" if rejected else ""
    return Response(
        otlp.export_response(encoding, rejected, message),
        media_type=otlp.MEDIA_TYPES[encoding],
    )
