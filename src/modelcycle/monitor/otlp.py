"""OTLP/HTTP trace ingest: an ``ExportTraceServiceRequest`` -> ``SpanRecord``s of a project.

Both OTLP/HTTP encodings are read: protobuf (``application/x-protobuf``) and
OTLP/JSON (``application/json``: camelCase or snake_case keys, trace and span
ids in hex, 64-bit integers as strings or numbers), either one optionally
gzipped. A request is taken whole or not at all: one malformed span (missing or
all-zero ids, an end before its start, a body that does not decode) rejects the
request with ``InvalidInput`` naming the span, and nothing of it is stored.
Attributes are mapped onto columns by ``modelcycle.monitor.semconv``.
"""

from __future__ import annotations

import base64
import binascii
import math
import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from modelcycle.errors import InvalidInput, PayloadTooLarge
from modelcycle.monitor import semconv
from modelcycle.monitor.spans import SpanRecord, clip

Encoding = Literal["protobuf", "json"]
MEDIA_TYPES: dict[Encoding, str] = {
    "protobuf": "application/x-protobuf",
    "json": "application/json",
}
MAX_SPANS = 10_000
"""Spans one request may carry (OTel SDKs send 512 per batch by default)."""
INFLATION = 4
"""A gzipped body may inflate to this many times the body size limit."""
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_CHARS = 4_096
MAX_ATTRIBUTES_CHARS = 16_384
DROPPED_ATTRIBUTES = "modelcycle.dropped_attributes"
"""Attribute counting those left out of a span's ``attributes`` (over the bounds above)."""
SDK_NAME = "modelcycle"
"""``telemetry.sdk.name`` of the ``modelcycle.trace`` SDK: its spans get source ``sdk``."""
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ID_KEYS = (("traceId", "trace_id", 16), ("spanId", "span_id", 8))
_PARENT_KEYS = ("parentSpanId", "parent_span_id", 8)
_INVALID_ARGUMENT = 3
"""``google.rpc.Code.INVALID_ARGUMENT``."""


def encoding_of(content_type: str | None) -> Encoding | None:
    """The OTLP encoding of a ``Content-Type``, ``None`` when it is neither."""
    media = (content_type or "").partition(";")[0].strip().lower()
    for encoding, name in MEDIA_TYPES.items():
        if media == name:
            return encoding
    return None


def decode(
    body: bytes,
    encoding: Encoding,
    *,
    project_id: int,
    max_bytes: int,
    gzipped: bool = False,
    content: bool = True,
    key_id: int | None = None,
) -> list[SpanRecord]:
    """The spans of one export request, all validated; ``InvalidInput`` when any is bad.

    ``max_bytes`` bounds the body after inflation (times ``INFLATION``); prompts
    and answers are kept only when ``content``.
    """
    raw = inflate(body, max_bytes * INFLATION) if gzipped else body
    request = parse_protobuf(raw) if encoding == "protobuf" else parse_json(raw)
    return spans_of(request, project_id=project_id, content=content, key_id=key_id)


def inflate(body: bytes, limit: int) -> bytes:
    """A gzip body inflated (every member); ``PayloadTooLarge`` past ``limit`` bytes."""
    out = bytearray()
    rest = body
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            out += inflater.decompress(rest, limit + 1 - len(out))
            if len(out) > limit or inflater.unconsumed_tail:
                raise PayloadTooLarge(f"the body inflates to more than {limit} bytes")
            if not inflater.eof:
                raise InvalidInput("the gzip body is truncated", code="invalid_gzip")
            rest = inflater.unused_data
    except zlib.error as exc:
        raise InvalidInput(f"the body is not valid gzip ({exc})", code="invalid_gzip") from exc
    return bytes(out)


def parse_protobuf(raw: bytes) -> ExportTraceServiceRequest:
    """A protobuf ``ExportTraceServiceRequest``."""
    try:
        request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(raw)
    except (DecodeError, RecursionError) as exc:
        raise InvalidInput(
            "the body is not a protobuf ExportTraceServiceRequest", code="invalid_otlp"
        ) from exc
    return request


def parse_json(raw: bytes) -> ExportTraceServiceRequest:
    """An OTLP/JSON ``ExportTraceServiceRequest`` (hex ids turned into protobuf's base64)."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("the body is not valid JSON", code="invalid_otlp") from exc
    if not isinstance(document, dict):
        raise InvalidInput(
            'the body must be a JSON object like {"resourceSpans": [...]}', code="invalid_otlp"
        )
    _ids_to_base64(document)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise InvalidInput(
            f"not an OTLP/JSON trace export: {message}", code="invalid_otlp"
        ) from exc
    return request


def _ids_to_base64(document: dict[str, Any]) -> None:
    """Hex ids (OTLP/JSON) rewritten in place as base64 (protobuf's JSON mapping of bytes)."""
    for span in _json_spans(document):
        links = [link for link in span.get("links") or () if isinstance(link, dict)]
        for holder, keys in (
            (span, (*_ID_KEYS, _PARENT_KEYS)),
            *((link, _ID_KEYS) for link in links),
        ):
            for camel, snake, size in keys:
                for key in (camel, snake):
                    if isinstance(holder.get(key), str):
                        holder[key] = _hex_to_base64(holder[key], size, key)


def _json_spans(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The span objects of an OTLP/JSON document (pre-1.0 key names renamed on the way)."""
    for resource in _items(document, "resourceSpans", "resource_spans"):
        if "instrumentationLibrarySpans" in resource and "scopeSpans" not in resource:
            resource["scopeSpans"] = resource.pop("instrumentationLibrarySpans")
            for scope in _items(resource, "scopeSpans"):
                if "instrumentationLibrary" in scope:
                    scope["scope"] = scope.pop("instrumentationLibrary")
        for scope in _items(resource, "scopeSpans", "scope_spans"):
            yield from _items(scope, "spans")


def _items(parent: dict[str, Any], *keys: str) -> Iterator[dict[str, Any]]:
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            yield from (item for item in value if isinstance(item, dict))


def _hex_to_base64(value: str, size: int, key: str) -> str:
    """An OTLP/JSON id (hex, as the spec says; base64 tolerated) in protobuf's JSON form."""
    if value == "":
        return value
    try:
        decoded = bytes.fromhex(value)
    except ValueError:
        decoded = b""
    if len(decoded) != size:
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
    if len(decoded) != size:
        raise InvalidInput(f"{key} {value[:40]!r} is not {size * 2} hex digits", param=key)
    return base64.b64encode(decoded).decode()


def spans_of(
    request: ExportTraceServiceRequest,
    *,
    project_id: int,
    content: bool = True,
    key_id: int | None = None,
) -> list[SpanRecord]:
    """The request's spans as records of ``project_id`` (``InvalidInput`` on a bad one)."""
    total = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
    if total > MAX_SPANS:
        raise InvalidInput(
            f"{total} spans in one request; send at most {MAX_SPANS} (smaller batches)",
            code="too_many_spans",
        )
    records: list[SpanRecord] = []
    seen: set[tuple[str, str]] = set()
    index = 0  # the span's place in the request, for error messages
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        source = "sdk" if resource.get("telemetry.sdk.name") == SDK_NAME else "otlp"
        service = resource.get("service.name")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                record = _record(span, index, project_id=project_id, source=source, content=content)
                index += 1
                record.key_id = key_id
                context = {"service.name": service, "otel.scope.name": scope_spans.scope.name}
                context = {k: v for k, v in context.items() if v}
                record.attributes = _bounded({**context, **(record.attributes or {})}.items())
                if (record.trace_id, record.span_id) not in seen:
                    seen.add((record.trace_id, record.span_id))
                    records.append(record)
    _share_trace_identity(records)
    return records


def _record(span: Span, index: int, *, project_id: int, source: str, content: bool) -> SpanRecord:
    trace_id = _id(span.trace_id, 16, "trace_id", index)
    span_id = _id(span.span_id, 8, "span_id", index)
    parent = None
    if span.parent_span_id and any(span.parent_span_id):
        parent = _id(span.parent_span_id, 8, "parent_span_id", index)
    start = _time(span.start_time_unix_nano, "start_time_unix_nano", index)
    end = _time(span.end_time_unix_nano, "end_time_unix_nano", index)
    if end < start:
        raise InvalidInput(
            f"span {index}: end_time_unix_nano is before start_time_unix_nano",
            param="end_time_unix_nano",
            code="invalid_span",
        )
    columns = semconv.read(attributes_of(span.attributes), content=content)
    failed = span.status.code == Status.STATUS_CODE_ERROR
    exception = _exception(span) if failed else {}
    error_message = span.status.message or exception.get("exception.message")
    return SpanRecord(
        project_id=project_id,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=(_clean(span.name) or columns.kind)[:200],
        kind=columns.kind,
        source=source,
        start_time=start,
        end_time=end,
        duration_ms=(span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
        ttft_ms=columns.ttft_ms,
        status="error" if failed else "ok",
        status_code=columns.status_code,
        error_type=(columns.error_type or _opt(exception.get("exception.type")))
        if failed
        else columns.error_type,
        error_message=clip(str(error_message))[:4_000] if failed and error_message else None,
        request_id=columns.request_id,
        endpoint=columns.endpoint,
        deployment=columns.deployment,
        model=columns.model,
        user_id=columns.user_id,
        session_id=columns.session_id,
        input_tokens=columns.input_tokens,
        output_tokens=columns.output_tokens,
        cached_tokens=columns.cached_tokens,
        reasoning_tokens=columns.reasoning_tokens,
        cost=columns.cost,
        stream=columns.stream,
        finish_reason=columns.finish_reason,
        params=columns.params,
        input=columns.input,
        output=columns.output,
        attributes={**columns.metadata, **columns.rest},
    )


def _id(raw: bytes, size: int, name: str, index: int) -> str:
    if len(raw) != size or not any(raw):
        problem = "all zeros" if len(raw) == size else f"{len(raw)} bytes, not {size}"
        raise InvalidInput(f"span {index}: {name} is {problem}", param=name, code="invalid_span")
    return raw.hex()


def _time(nanos: int, name: str, index: int) -> datetime:
    at = _EPOCH + timedelta(microseconds=nanos // 1000)
    if at < _EARLIEST:
        raise InvalidInput(
            f"span {index}: {name} is {nanos}, before the year 2000; send nanoseconds "
            "since the Unix epoch",
            param=name,
            code="invalid_span",
        )
    return at


def _exception(span: Span) -> dict[str, Any]:
    for event in span.events:
        if event.name == "exception":
            return attributes_of(event.attributes)
    return {}


def attributes_of(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP key-values as a dict of plain, JSON-storable values."""
    return {_clean(pair.key): _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "string_value":
        return _clean(value.string_value)
    if which == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else None  # JSONB has no NaN
    if which == "array_value":
        return [_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which) if which else None


def _clean(text: str) -> str:
    """``text`` without NUL characters, which neither database stores in text or JSON."""
    return text.replace("\x00", "") if "\x00" in text else text


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)[:64]


def _bounded(items: Iterable[tuple[str, Any]]) -> dict[str, Any] | None:
    """At most ``MAX_ATTRIBUTES`` attributes, each and all of bounded size; the rest counted."""
    kept: dict[str, Any] = {}
    size = dropped = 0
    for key, value in items:
        short = value
        if isinstance(value, str):
            short = value[:MAX_ATTRIBUTE_CHARS]
        elif isinstance(value, list | dict):
            text = orjson.dumps(value, default=str).decode()
            short = value if len(text) <= MAX_ATTRIBUTE_CHARS else text[:MAX_ATTRIBUTE_CHARS]
        cost = len(key) + (len(short) if isinstance(short, str) else 16)
        if len(kept) >= MAX_ATTRIBUTES or size + cost > MAX_ATTRIBUTES_CHARS:
            dropped += 1
            continue
        kept[key[:200]] = short
        size += cost
    if dropped:
        kept[DROPPED_ATTRIBUTES] = dropped
    return kept or None


def _share_trace_identity(records: list[SpanRecord]) -> None:
    """Copy a trace's user and session onto its spans that lack them (searches never join)."""
    users: dict[str, str] = {}
    sessions: dict[str, str] = {}
    for record in records:
        if record.user_id:
            users.setdefault(record.trace_id, record.user_id)
        if record.session_id:
            sessions.setdefault(record.trace_id, record.session_id)
    for record in records:
        record.user_id = record.user_id or users.get(record.trace_id)
        record.session_id = record.session_id or sessions.get(record.trace_id)


def export_response(encoding: Encoding, rejected: int, message: str = "") -> bytes:
    """The ``ExportTraceServiceResponse`` body; ``partial_success`` when spans were refused."""
    if encoding == "json":
        if not rejected:
            return b"{}"
        return orjson.dumps(
            {"partialSuccess": {"rejectedSpans": rejected, "errorMessage": message}}
        )
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
        )
    body: bytes = response.SerializeToString()
    return body


def error_status(message: str) -> bytes:
    """A protobuf ``google.rpc.Status`` (code INVALID_ARGUMENT), as OTLP/HTTP answers a 400.

    Encoded by hand: two fields, and no dependency on googleapis-common-protos.
    """
    text = message.encode()
    return bytes([0x08, _INVALID_ARGUMENT, 0x12]) + _varint(len(text)) + text


def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)
