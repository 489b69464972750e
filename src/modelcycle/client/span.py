"""A span of the ``modelcycle.trace`` SDK, and its OTLP/JSON form.

The attribute names are the ones the server's OTLP ingest maps onto columns
(``modelcycle.monitor.semconv``): ``modelcycle.*`` for kind, input, output,
user, session and metadata; OpenTelemetry GenAI names for the model and usage.
"""

from __future__ import annotations

import math
import os
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

import orjson

from modelcycle.version import __version__

KINDS = frozenset({"llm", "embedding", "tool", "retriever", "chain", "agent", "span"})
"""Span kinds: ``llm`` and ``embedding`` spans count in the per-minute rollups."""
SDK_NAME = "modelcycle"
"""``telemetry.sdk.name`` of these spans; the server marks them source ``sdk``."""
MAX_TEXT = 64_000
"""Characters of an input or output sent; the rest is cut (the server keeps as many)."""
MAX_HEADER_VALUE = 128
_UNSET: Any = object()
_OK, _ERROR = 0, 2  # OTLP status codes: unset, error
_INTERNAL = 1  # OTLP span kind


class Span:
    """One timed operation of the application; ``set`` attaches what it did."""

    def __init__(self, name: str, kind: str, trace_id: str, parent: Span | None = None):
        self.name = name
        self.kind = kind
        self.trace_id = trace_id
        self.span_id = _random_id(8)
        self.parent = parent
        self.parent_span_id = parent.span_id if parent is not None else None
        self.start_ns = time.time_ns()
        self.end_ns: int | None = None
        self.attributes: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}
        self.user: str | None = parent.user if parent is not None else None
        """Inherited by child spans and sent to the gateway by ``trace.headers()``."""
        self.session: str | None = parent.session if parent is not None else None
        self.error_message: str | None = None
        self.events: list[dict[str, Any]] = []
        self._finish_lock = threading.Lock()

    @classmethod
    def child_of(cls, parent: Span | None, name: str, kind: str) -> Span:
        """A new span under ``parent`` (a new trace when ``None``)."""
        trace_id = parent.trace_id if parent is not None else _random_id(16)
        return cls(name, kind, trace_id, parent)

    # -- what the span did -------------------------------------------------------------

    def set(
        self,
        *,
        input: Any = _UNSET,
        output: Any = _UNSET,
        model: str | None = None,
        usage: Any = None,
        metadata: Mapping[str, Any] | None = None,
        user: str | None = None,
        session: str | None = None,
        deployment: str | None = None,
        **attributes: Any,
    ) -> Span:
        """Attach facts to the span; returns it. Any keyword left is set as an attribute.

        ``usage``: a mapping or object with ``input_tokens``/``output_tokens`` or
        ``prompt_tokens``/``completion_tokens`` (an OpenAI ``usage`` works as is).
        ``user`` and ``session`` also apply to the spans started under this one.
        """
        if input is not _UNSET:
            self.attributes["modelcycle.input"] = _clip(_json_text(input))
        if output is not _UNSET:
            text = output if isinstance(output, str) else _json_text(output)
            self.attributes["modelcycle.output"] = _clip(text)
        if model is not None:
            self.attributes["gen_ai.request.model"] = model
        if usage is not None:
            self.attributes.update(_usage(usage))
        if metadata:
            self.metadata.update(metadata)
        if deployment is not None:
            self.attributes["modelcycle.deployment"] = deployment
        self.user = user if user is not None else self.user
        self.session = session if session is not None else self.session
        self.attributes.update(attributes)
        return self

    def record_exception(self, exc: BaseException) -> None:
        """Mark the span failed with ``exc`` (type, message and stack trace kept)."""
        self.error_message = str(exc) or type(exc).__name__
        self.attributes["error.type"] = type(exc).__qualname__
        stack = "".join(traceback.format_exception(exc))[-8_000:]
        self.events.append(
            {
                "name": "exception",
                "timeUnixNano": str(time.time_ns()),
                "attributes": _key_values(
                    {
                        "exception.type": type(exc).__qualname__,
                        "exception.message": self.error_message,
                        "exception.stacktrace": stack,
                    }
                ),
            }
        )

    # -- propagation -------------------------------------------------------------------

    @property
    def traceparent(self) -> str:
        """The W3C ``traceparent`` naming this span (sampled)."""
        return f"00-{self.trace_id}-{self.span_id}-01"

    def propagation_headers(self) -> dict[str, str]:
        """``traceparent``, plus ``X-Modelcycle-User``/``-Session`` when set and sendable."""
        found = {"traceparent": self.traceparent}
        for header, value in (
            ("X-Modelcycle-User", self.user),
            ("X-Modelcycle-Session", self.session),
        ):
            if value and len(value) <= MAX_HEADER_VALUE and value.isascii() and value.isprintable():
                found[header] = value
        return found

    # -- ending and sending ------------------------------------------------------------

    def finish(self) -> bool:
        """Stamp the end time; ``False`` when the span had ended already."""
        with self._finish_lock:
            if self.end_ns is not None:
                return False
            self.end_ns = max(time.time_ns(), self.start_ns)
            return True

    @property
    def duration_ms(self) -> float | None:
        """Milliseconds from start to end, ``None`` while running."""
        return None if self.end_ns is None else (self.end_ns - self.start_ns) / 1e6

    def otlp(self) -> bytes:
        """The span as one OTLP/JSON ``Span`` object (serialised once, when it ends)."""
        attributes = {"modelcycle.span.kind": self.kind, **self.attributes}
        if self.user:
            attributes["modelcycle.user"] = self.user
        if self.session:
            attributes["modelcycle.session"] = self.session
        if self.metadata:
            attributes["modelcycle.metadata"] = _json_text(self.metadata)
        span: dict[str, Any] = {
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "parentSpanId": self.parent_span_id or "",
            "name": self.name,
            "kind": _INTERNAL,
            "startTimeUnixNano": str(self.start_ns),
            "endTimeUnixNano": str(self.end_ns or time.time_ns()),
            "attributes": _key_values(attributes),
            "status": {"code": _ERROR, "message": self.error_message}
            if self.error_message is not None
            else {"code": _OK},
        }
        if self.events:
            span["events"] = self.events
        return orjson.dumps(span, default=str)


def otlp_document(spans: list[bytes], service_name: str) -> bytes:
    """An OTLP/JSON ``ExportTraceServiceRequest`` around spans serialised by ``Span.otlp``."""
    resource = _key_values(
        {
            "service.name": service_name,
            "telemetry.sdk.name": SDK_NAME,
            "telemetry.sdk.language": "python",
            "telemetry.sdk.version": __version__,
        }
    )
    head = orjson.dumps({"resource": {"attributes": resource}})[:-1]
    scope = orjson.dumps({"name": "modelcycle.trace", "version": __version__})
    return b"".join(
        (
            b'{"resourceSpans":[',
            head,
            b',"scopeSpans":[{"scope":',
            scope,
            b',"spans":[',
            b",".join(spans),
            b"]}]}]}",
        )
    )


def _key_values(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": _any_value(v)} for k, v in attributes.items() if v is not None]


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return {"intValue": str(value)}
    if isinstance(value, float) and math.isfinite(value):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list | tuple) and all(
        isinstance(v, str | bool | int | float) for v in value
    ):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    return {"stringValue": _json_text(value)}


def _usage(usage: Any) -> dict[str, int]:
    """OpenTelemetry GenAI usage attributes from an OpenAI-style or plain usage record."""

    def get(source: Any, *names: str) -> Any:
        for name in names:
            value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
            if value is not None:
                return value
        return None

    found = {
        "gen_ai.usage.input_tokens": get(usage, "input_tokens", "prompt_tokens"),
        "gen_ai.usage.output_tokens": get(usage, "output_tokens", "completion_tokens"),
        "gen_ai.usage.cache_read.input_tokens": get(usage, "cached_tokens")
        or get(get(usage, "prompt_tokens_details", "input_tokens_details") or {}, "cached_tokens"),
        "gen_ai.usage.reasoning.output_tokens": get(usage, "reasoning_tokens")
        or get(
            get(usage, "completion_tokens_details", "output_tokens_details") or {},
            "reasoning_tokens",
        ),
    }
    return {k: int(v) for k, v in found.items() if isinstance(v, int) and not isinstance(v, bool)}


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return orjson.dumps(repr(value)).decode()


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"…[{len(text) - MAX_TEXT} characters cut]"


def _random_id(size: int) -> str:
    while True:
        raw = os.urandom(size)
        if any(raw):  # all zeros is the invalid id
            return raw.hex()
