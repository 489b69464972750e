"""Optional export of spans and metrics to an OpenTelemetry collector over OTLP/HTTP.

Set ``otlp_endpoint`` (e.g. ``http://collector:4318``) and install the
``[otel]`` extra: every batch the recorder writes is also turned into OTel
spans that follow the GenAI semantic conventions and handed to the SDK's
``BatchSpanProcessor`` (its own thread and queue, so a slow collector never
slows the trace writer); a thread sends the request metrics of ``Metrics``
(the ``/metrics`` registry) under their OpenTelemetry names every
``metric_interval_s``, cumulative, and once more at shutdown. Spans that
arrived over OTLP are not sent back out: they already travel through an OpenTelemetry pipeline, and
re-exporting them would duplicate them in a shared collector. Headers for the
collector (authentication) come from the SDK's standard
``OTEL_EXPORTER_OTLP_HEADERS`` variable.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from modelcycle.errors import MissingExtra
from modelcycle.monitor.metrics import Metrics, operation_name, version_label
from modelcycle.monitor.spans import SpanRecord
from modelcycle.version import __version__

try:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import MetricExportResult
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    from modelcycle.monitor.otel_metrics import PROVIDER, metrics_data
except ImportError:  # the [otel] extra is optional; OtlpExport says what to install
    OTEL_MISSING = True
else:
    OTEL_MISSING = False

log = logging.getLogger(__name__)

_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "max_tokens": "gen_ai.request.max_tokens",
    "seed": "gen_ai.request.seed",
    "stop": "gen_ai.request.stop_sequences",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "n": "gen_ai.request.choice.count",
}
"""Request parameters (``SpanRecord.params``) -> GenAI request attributes."""


class OtlpExport:
    """A ``Recorder`` observer sending spans, and a thread sending request metrics, over OTLP."""

    def __init__(
        self,
        endpoint: str,
        metrics: Metrics | None,
        *,
        service_name: str = "modelcycle",
        metric_interval_s: float = 60.0,
        timeout_s: float = 5.0,
    ):
        if OTEL_MISSING:
            raise MissingExtra("opentelemetry-sdk", "otel")
        base = endpoint.rstrip("/")
        self.metrics = metrics
        self.resource = Resource.create(
            {"service.name": service_name, "service.version": __version__}
        )
        self.scope = InstrumentationScope("modelcycle.monitor", __version__)
        self.spans = BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=timeout_s),
            max_queue_size=20_000,
        )
        self._metric_exporter = OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=timeout_s)
        self._timeout_s = timeout_s
        self._interval_s = metric_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._export_periodically, name="modelcycle-otlp-metrics", daemon=True
        )
        if metrics is not None:  # None: spans only (the trace writer child)
            self._thread.start()

    def observe(self, spans: Sequence[SpanRecord]) -> None:
        """Queue ``spans`` for export (the SDK's processor sends them from its own thread)."""
        for record in spans:
            if record.source != "otlp":
                self.spans.on_end(to_otel(record, self.resource, self.scope))

    def export_metrics(self) -> bool:
        """Send the request metrics now; ``False`` when the collector did not take them."""
        if self.metrics is None:
            return True
        data = metrics_data(self.metrics, self.resource, self.scope)
        result = self._metric_exporter.export(data, timeout_millis=self._timeout_s * 1000)
        return result == MetricExportResult.SUCCESS

    def _export_periodically(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.export_metrics()
            except Exception:  # the thread must outlive any one failure
                log.exception("OTLP metric export failed")

    def force_flush(self, timeout_s: float = 30.0) -> bool:
        """Send the spans queued and the metrics now; ``False`` when either did not go."""
        spans = self.spans.force_flush(int(timeout_s * 1000))
        return self.export_metrics() and spans

    def shutdown(self) -> None:
        """Send what is queued and the metrics' last values, then stop the threads."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._timeout_s)
        self.spans.shutdown()  # type: ignore[no-untyped-call]
        try:
            self.export_metrics()
        except Exception:
            log.exception("OTLP metric export failed")
        self._metric_exporter.shutdown()


def to_otel(record: SpanRecord, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    """The OTel span of ``record`` (GenAI attribute names, times in nanoseconds)."""
    trace_id = _hex_id(record.trace_id, 128)
    context = SpanContext(
        trace_id, _hex_id(record.span_id, 64), False, TraceFlags(TraceFlags.SAMPLED)
    )
    parent = None
    if record.parent_span_id:
        parent = SpanContext(trace_id, _hex_id(record.parent_span_id, 64), False)
    gateway = record.source == "gateway"
    failed = record.status != "ok"
    return ReadableSpan(
        name=f"{operation_name(record)} {record.deployment}" if gateway else record.name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes_of(record),
        kind=SpanKind.SERVER if gateway else SpanKind.INTERNAL,
        status=Status(StatusCode.ERROR, record.error_message) if failed else Status(),
        start_time=_nanos(record.start_time),
        end_time=_nanos(record.end_time),
        instrumentation_scope=scope,
    )


def attributes_of(record: SpanRecord) -> dict[str, Any]:
    """The span's OTel attributes; ``None`` and empty values are left out."""
    found: dict[str, Any] = {
        "modelcycle.project_id": record.project_id,
        "modelcycle.kind": record.kind,
        "modelcycle.source": record.source,
        "user.id": record.user_id,
        "gen_ai.conversation.id": record.session_id,
        "error.type": (record.error_type or "_OTHER") if record.status != "ok" else None,
    }
    if record.source == "gateway":
        found.update(_gateway_attributes(record))
    for key, value in (record.attributes or {}).items():
        name = key if record.source != "gateway" else f"modelcycle.metadata.{key}"
        found.setdefault(name, value)
    return {k: _attribute(v) for k, v in found.items() if v is not None and v != ""}


def _gateway_attributes(record: SpanRecord) -> dict[str, Any]:
    found: dict[str, Any] = {
        "gen_ai.operation.name": operation_name(record),
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.model": record.deployment,
        "gen_ai.response.model": version_label(record),
        "gen_ai.response.id": record.request_id,
        "gen_ai.request.stream": record.stream,
        "http.response.status_code": record.status_code,
        "modelcycle.deployment": record.deployment,
        "modelcycle.model": record.model,
        "modelcycle.version": record.version,
        "modelcycle.route": record.route,
        "modelcycle.cache_hit": record.cache_hit,
        "modelcycle.attempts": record.attempts,
        "modelcycle.guard": record.guard,
    }
    if record.status == "ok":
        found["gen_ai.usage.input_tokens"] = record.input_tokens
        if record.kind != "embedding":
            found["gen_ai.usage.output_tokens"] = record.output_tokens
        found["gen_ai.usage.cache_read.input_tokens"] = record.cached_tokens
        found["gen_ai.usage.reasoning.output_tokens"] = record.reasoning_tokens
    if record.finish_reason:
        found["gen_ai.response.finish_reasons"] = [record.finish_reason]
    if record.ttft_ms is not None:
        found["gen_ai.response.time_to_first_chunk"] = record.ttft_ms / 1000
    for param, value in (record.params or {}).items():
        name = _PARAMS.get(param)
        if name is not None:
            found[name] = value
    found["gen_ai.input.messages"] = _input_messages(record.input)
    found["gen_ai.output.messages"] = _output_messages(record)
    return found


def _input_messages(text: str | None) -> str | None:
    """``[{role, content}]`` (or a prompt) as the conventions' ``[{role, parts}]`` JSON."""
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:  # a clipped input: send it as one text part
        value = text
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
        messages = [{"role": m["role"], "parts": [_text_part(m.get("content"))]} for m in value]
    else:
        messages = [{"role": "user", "parts": [_text_part(value)]}]
    return orjson.dumps(messages).decode()


def _output_messages(record: SpanRecord) -> str | None:
    if record.output is None or record.kind == "embedding":
        return None
    message = {
        "role": "assistant",
        "parts": [_text_part(record.output)],
        "finish_reason": record.finish_reason or "stop",
    }
    return orjson.dumps([message]).decode()


def _text_part(content: Any) -> dict[str, Any]:
    text = content if isinstance(content, str) else orjson.dumps(content).decode()
    return {"type": "text", "content": text}


def _attribute(value: Any) -> Any:
    """An OTel attribute value: a scalar, a list of strings, or JSON text for the rest."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return orjson.dumps(value).decode()


def _hex_id(value: str, bits: int) -> int:
    """A W3C id from its hex text; other ids (never 0) are hashed to the right width."""
    try:
        number = int(value, 16)
    except ValueError:
        number = 0
    if 0 < number < 1 << bits and len(value) == bits // 4:
        return number
    digest = hashlib.sha256(value.encode()).digest()
    return int.from_bytes(digest[: bits // 8], "big") or 1


def _nanos(at: datetime) -> int:
    """Nanoseconds since the epoch; a naive time is UTC, as everywhere in the store."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1e9)
