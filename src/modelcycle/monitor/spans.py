"""``SpanRecord``: one span as the writer stores it, and its making from a gateway event."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from modelcycle import events
from modelcycle.backends import GenerationParams, Message

SOURCES = ("gateway", "sdk", "otlp")
MAX_TEXT = 64_000
"""Characters of an input or output kept on a span; longer ones are cut and marked."""


@dataclass(slots=True)
class SpanRecord:
    """The columns of one ``spans`` row (see ``modelcycle.store.tables.SpanRow``)."""

    project_id: int
    trace_id: str
    span_id: str
    name: str
    kind: str
    source: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    status: str
    parent_span_id: str | None = None
    ttft_ms: float | None = None
    status_code: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    endpoint: str | None = None
    deployment: str | None = None
    model: str | None = None
    version: int | None = None
    route: str | None = None
    key_id: int | None = None
    user_id: str | None = None
    session_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: float | None = None
    cache_hit: bool = False
    attempts: int = 1
    stream: bool = False
    finish_reason: str | None = None
    guard: str | None = None
    params: dict[str, Any] | None = None
    input: str | None = None
    output: str | None = None
    attributes: dict[str, Any] | None = None

    def row(self) -> dict[str, Any]:
        """The record as a column -> value mapping for an insert."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def is_llm(self) -> bool:
        """Whether rollups count it (model calls: the gateway's, and traced LLM spans)."""
        return self.kind in {"llm", "embedding"}


def new_span_id() -> str:
    """A random 64-bit span id in hex (W3C trace context)."""
    return os.urandom(8).hex()


def from_request(event: events.RequestFinished, *, content: bool = True) -> SpanRecord:
    """The span of a gateway request; inputs and outputs only when ``content``."""
    end = event.at
    start = end - timedelta(milliseconds=event.latency_ms)
    trace_id = event.trace_id or event.request_id
    return SpanRecord(
        project_id=event.project_id,
        trace_id=trace_id,
        span_id=new_span_id() if event.trace_id else event.request_id[-16:],  # random part
        parent_span_id=event.parent_span_id,
        name=f"{event.endpoint} {event.deployment}",
        kind="embedding" if event.endpoint == "embeddings" else "llm",
        source="gateway",
        start_time=start,
        end_time=end,
        duration_ms=event.latency_ms,
        ttft_ms=event.ttft_ms,
        status=event.status,
        status_code=event.status_code,
        error_type=event.error_type,
        error_message=event.error_message,
        request_id=event.request_id,
        endpoint=event.endpoint,
        deployment=event.deployment,
        model=event.model,
        version=event.version,
        route=event.route,
        key_id=event.key_id,
        user_id=event.user,
        session_id=event.session,
        input_tokens=event.prompt_tokens,
        output_tokens=event.completion_tokens,
        cached_tokens=event.cached_tokens,
        reasoning_tokens=event.reasoning_tokens,
        cache_hit=event.cache_hit,
        attempts=event.attempts,
        stream=event.stream,
        finish_reason=event.finish_reason,
        guard=event.guard,
        params=params_dict(event.params),
        input=input_text(event.input) if content else None,
        output=output_text(event.output) if content else None,
        attributes=attributes(event),
    )


GUARD_FINDINGS = "guard.findings"
GUARD_MS = "guard.ms"


def attributes(event: events.RequestFinished) -> dict[str, Any] | None:
    """The caller's metadata and what the guard found (these keys are never the caller's)."""
    found = dict(event.metadata) if event.metadata else {}
    found.pop(GUARD_FINDINGS, None)
    found.pop(GUARD_MS, None)
    if event.guard is not None:
        found[GUARD_FINDINGS] = [dict(finding) for finding in event.guard_findings]
    if event.guard_ms is not None:
        found[GUARD_MS] = round(event.guard_ms, 3)
    return found or None


def params_dict(params: object) -> dict[str, Any] | None:
    """The request's sampling parameters that were set (``None`` values left out)."""
    if not isinstance(params, GenerationParams):
        return None
    found: dict[str, Any] = {}
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if value is None or value is False or f.name == "passthrough":
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        found[f.name] = list(value) if isinstance(value, tuple) else value
    passthrough = params.passthrough
    if passthrough:
        found.update({k: v for k, v in passthrough.items() if k != "messages"})
    return found or None


def input_text(value: object) -> str | None:
    """Messages as a JSON list of ``{role, content}``, a prompt as a JSON string."""
    if value is None:
        return None
    if isinstance(value, tuple) and value and isinstance(value[0], Message):
        data: Any = [{"role": m.role, "content": m.content} for m in value]
    elif isinstance(value, tuple):
        data = [v if isinstance(v, str) else list(v) for v in value]
    else:
        data = value
    return clip(orjson.dumps(data).decode())


def output_text(value: str | tuple[str, ...] | None) -> str | None:
    """The answer (several answers as a JSON list)."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return clip(orjson.dumps(list(value)).decode())
    return clip(value)


def clip(text: str) -> str:
    """``text``, cut to ``MAX_TEXT`` characters with a marker when longer."""
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"…[{len(text) - MAX_TEXT} characters cut]"


def price(record: SpanRecord, pricing: Mapping[str, Any] | None) -> float | None:
    """The span's cost from its version's price table; ``None`` when it has none.

    ``pricing`` keys (all optional, US dollars): ``input_per_million``,
    ``cached_input_per_million`` (cached prompt tokens are charged at this rate
    *instead of* the input rate, never both), ``output_per_million`` (reasoning
    tokens are output tokens), ``per_compute_second`` (self-hosted: the time the
    request held the model).
    """
    if not pricing or record.cache_hit:
        return 0.0 if pricing else None
    cached = record.cached_tokens or 0
    fresh = max(0, record.input_tokens - cached)
    per_million = 1_000_000.0
    cost = (
        fresh * float(pricing.get("input_per_million", 0.0))
        + cached
        * float(pricing.get("cached_input_per_million", pricing.get("input_per_million", 0.0)))
        + record.output_tokens * float(pricing.get("output_per_million", 0.0))
    ) / per_million
    cost += record.duration_ms / 1000 * float(pricing.get("per_compute_second", 0.0))
    return cost
