"""``SpanRecord``: one span as the writer stores it, and its making from a gateway event."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

import orjson

from modelcycle import events

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
        return {name: getattr(self, name) for name in self.__slots__}

    @property
    def is_llm(self) -> bool:
        """Whether rollups count it (model calls: the gateway's, and traced LLM spans)."""
        return self.kind in {"llm", "embedding"}


def new_span_id() -> str:
    """A random 64-bit span id in hex (W3C trace context)."""
    return os.urandom(8).hex()


def to_json(value: object) -> bytes:
    """An event, a span or a list of them as JSON text (what the writer pipe carries).

    Raises ``TypeError`` for what orjson cannot write (an integer beyond 64 bits).
    """
    return orjson.dumps(value, default=jsonable, option=orjson.OPT_NON_STR_KEYS)


EVENT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(events.RequestFinished))
"""``RequestFinished``'s fields in declaration order: the positions of ``to_wire``'s array."""
_EVENT_VALUES = attrgetter(*EVENT_FIELDS)


def to_wire(event: events.RequestFinished) -> bytes:
    """The event as a JSON array of its fields' values (``EVENT_FIELDS`` order).

    What the recorder queues for the writer child, on the request path: the
    server and its child run the same code, so positions stand for the names,
    which halves the text and takes a third less CPU to write than an object.
    Raises ``TypeError`` for what orjson cannot write (an integer beyond 64 bits).
    """
    return orjson.dumps(_EVENT_VALUES(event), default=jsonable, option=orjson.OPT_NON_STR_KEYS)


def from_wire(values: list[Any]) -> dict[str, Any]:
    """The JSON object (``request_json``) of an event sent as ``to_wire``'s array."""
    if len(values) != len(EVENT_FIELDS):
        raise ValueError(f"an event has {len(EVENT_FIELDS)} fields, not {len(values)}")
    return dict(zip(EVENT_FIELDS, values, strict=True))


def request_json(event: events.RequestFinished) -> dict[str, Any]:
    """The event as a JSON object: what the writer child receives (``from_request_json``)."""
    try:
        data: dict[str, Any] = orjson.loads(to_json(event))
    except TypeError:  # an integer beyond 64 bits in the caller's metadata or parameters
        text = json.dumps(dataclasses.asdict(event), default=jsonable)
        data = json.loads(text, parse_int=_int64_or_text)
    return data


def _int64_or_text(digits: str) -> int | str:
    """An integer the database's JSON can hold, else its digits as text."""
    value = int(digits)
    return value if -(2**63) <= value < 2**64 else digits


def jsonable(value: object) -> Any:
    """What orjson writes for a value of an event it cannot write itself."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def from_request(event: events.RequestFinished, *, content: bool = True) -> SpanRecord:
    """The span of a gateway request; inputs and outputs only when ``content``."""
    return from_request_json(request_json(event), content=content)


def from_request_json(event: dict[str, Any], *, content: bool = True) -> SpanRecord:
    """The span of a gateway request given as its JSON object (``request_json``).

    One mapping for both sides of the writer pipe: the server ships events as
    JSON, the child makes their spans, and a server writing in a thread makes
    them from the same JSON, so a span is the same wherever it was made.
    """
    end = datetime.fromisoformat(event["at"])
    latency_ms = event["latency_ms"]
    start = end - timedelta(milliseconds=latency_ms)
    request_id: str = event["request_id"]
    parent_trace = event.get("trace_id")
    endpoint = event["endpoint"]
    return SpanRecord(
        project_id=event.get("project_id", 0),
        trace_id=parent_trace or request_id,
        span_id=new_span_id() if parent_trace else request_id[-16:],  # random part
        parent_span_id=event.get("parent_span_id"),
        name=f"{endpoint} {event['deployment']}",
        kind="embedding" if endpoint == "embeddings" else "llm",
        source="gateway",
        start_time=start,
        end_time=end,
        duration_ms=latency_ms,
        ttft_ms=event.get("ttft_ms"),
        status=event["status"],
        status_code=event.get("status_code"),
        error_type=event.get("error_type"),
        error_message=event.get("error_message"),
        request_id=request_id,
        endpoint=endpoint,
        deployment=event["deployment"],
        model=event.get("model"),
        version=event.get("version"),
        route=event.get("route"),
        key_id=event.get("key_id"),
        user_id=event.get("user"),
        session_id=event.get("session"),
        input_tokens=event.get("prompt_tokens", 0),
        output_tokens=event.get("completion_tokens", 0),
        cached_tokens=event.get("cached_tokens"),
        reasoning_tokens=event.get("reasoning_tokens"),
        cache_hit=event.get("cache_hit", False),
        attempts=event.get("attempts", 1),
        stream=event.get("stream", False),
        finish_reason=event.get("finish_reason"),
        guard=event.get("guard"),
        params=params_dict(event.get("params")),
        input=input_text(event.get("input")) if content else None,
        output=output_text(event.get("output")) if content else None,
        attributes=attributes(event),
    )


GUARD_FINDINGS = "guard.findings"
GUARD_MS = "guard.ms"


def attributes(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The caller's metadata and what the guard found (these keys are never the caller's)."""
    metadata = event.get("metadata")
    found = dict(metadata) if metadata else {}
    found.pop(GUARD_FINDINGS, None)
    found.pop(GUARD_MS, None)
    if event.get("guard") is not None:
        found[GUARD_FINDINGS] = [dict(finding) for finding in event.get("guard_findings") or ()]
    if event.get("guard_ms") is not None:
        found[GUARD_MS] = round(event["guard_ms"], 3)
    return found or None


def params_dict(params: object) -> dict[str, Any] | None:
    """The request's sampling parameters that were set (``None`` values left out).

    ``params``: ``GenerationParams`` as a JSON object (``request_json``).
    """
    if not isinstance(params, dict):
        return None
    found = {
        name: value
        for name, value in params.items()
        if value is not None and value is not False and name != "passthrough"
    }
    passthrough = params.get("passthrough")
    if isinstance(passthrough, dict):
        found.update({k: v for k, v in passthrough.items() if k != "messages"})
    return found or None


def input_text(value: object) -> str | None:
    """Messages as a JSON list of ``{role, content}``, a prompt as a JSON string.

    ``value``: the request's input as JSON (messages are objects with a ``role``).
    """
    if value is None:
        return None
    if isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]:
        value = [{"role": m.get("role"), "content": m.get("content")} for m in value]
    return clip(orjson.dumps(value).decode())


def output_text(value: object) -> str | None:
    """The answer (several answers as a JSON list)."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return clip(orjson.dumps(list(value)).decode())
    return clip(str(value))


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
