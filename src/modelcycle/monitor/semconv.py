"""Span attributes of the common LLM tracing dialects -> the columns of a ``spans`` row.

Instrumentations name the same facts differently, and the names churn (research:
shared/research/monitor.md §2 and §4). Read, first match wins:

* OpenTelemetry GenAI, current and old names (``gen_ai.usage.input_tokens`` /
  ``gen_ai.usage.prompt_tokens``, ``gen_ai.input.messages`` / ``gen_ai.prompt.N.*``);
* OpenInference (Phoenix): ``openinference.span.kind``, ``llm.*``, ``input.value``;
* OpenLLMetry / Traceloop: ``traceloop.span.kind``, ``traceloop.entity.*``,
  ``traceloop.association.properties.*``, ``llm.request.type``;
* our own ``modelcycle.*`` names (the ``modelcycle.trace`` SDK sends these).

Every attribute that fed a column is consumed; content attributes (prompts and
answers in any dialect) are consumed even when another one won, so that turning
content off (``trace_content``) never leaves a prompt behind in ``attributes``.
What is left is returned for the ``attributes`` column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelcycle.monitor.spans import clip

KINDS = frozenset({"llm", "embedding", "tool", "retriever", "chain", "agent", "span"})
"""The span kinds of the ``spans`` table."""
MAX_COUNT = 2**31 - 1
"""Token counts and status codes above this are not believed (an int4 column)."""

_OPERATION_KINDS = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "completion": "llm",
    "embeddings": "embedding",
    "embedding": "embedding",
    "execute_tool": "tool",
    "retrieval": "retriever",
    "rerank": "retriever",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "chain",
}
_OPENINFERENCE_KINDS = {
    "LLM": "llm",
    "EMBEDDING": "embedding",
    "TOOL": "tool",
    "RETRIEVER": "retriever",
    "RERANKER": "retriever",
    "CHAIN": "chain",
    "AGENT": "agent",
}
_TRACELOOP_KINDS = {"workflow": "chain", "task": "chain", "agent": "agent", "tool": "tool"}
_ENDPOINTS = {
    "chat": "chat.completions",
    "text_completion": "completions",
    "completion": "completions",
    "embeddings": "embeddings",
}
_REQUEST_PARAMS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.top_k": "top_k",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.presence_penalty": "presence_penalty",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.stop_sequences": "stop",
    "gen_ai.request.choice.count": "n",
}
_INPUT_KEYS = (
    "modelcycle.input",
    "gen_ai.input.messages",
    "gen_ai.system_instructions",
    "gen_ai.prompt",
    "input.value",
    "input.mime_type",
    "traceloop.entity.input",
)
_OUTPUT_KEYS = (
    "modelcycle.output",
    "gen_ai.output.messages",
    "gen_ai.completion",
    "output.value",
    "output.mime_type",
    "traceloop.entity.output",
)
_INDEXED = re.compile(
    r"^(gen_ai\.prompt|gen_ai\.completion|llm\.(?:input|output)_messages)\.(\d+)\.(.+)$"
)
_ASSOCIATION = "traceloop.association.properties."


@dataclass(slots=True)
class Columns:
    """What the attributes say about a span, column by column."""

    kind: str = "span"
    model: str | None = None
    deployment: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    request_id: str | None = None
    endpoint: str | None = None
    finish_reason: str | None = None
    error_type: str | None = None
    status_code: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: float | None = None
    ttft_ms: float | None = None
    stream: bool = False
    params: dict[str, Any] | None = None
    input: str | None = None
    output: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    """Free key-values the application attached (OpenInference ``metadata``, Traceloop
    association properties, ``modelcycle.metadata``)."""
    rest: dict[str, Any] = field(default_factory=dict)
    """Attributes no column took."""


class _Reader:
    """Attributes with the names already consumed taken out."""

    def __init__(self, attributes: Mapping[str, Any]):
        self.left = dict(attributes)

    def take(self, *names: str) -> Any:
        """The first of ``names`` present (``None`` when none is); all of them consumed."""
        found = None
        for name in names:
            value = self.left.pop(name, None)
            if found is None and value is not None:
                found = value
        return found

    def count(self, *names: str) -> int | None:
        """The first of ``names`` that is a plausible count."""
        for name in names:
            value = _count(self.left.get(name))
            if value is not None:
                self.take(*names)
                return value
        return None

    def text(self, *names: str, limit: int) -> str | None:
        """The first of ``names`` as text of at most ``limit`` characters."""
        value = self.take(*names)
        return None if value is None else _short(str(value), limit)

    def prefixed(self, prefix: str) -> dict[str, Any]:
        """Every attribute under ``prefix`` (consumed), keyed by the rest of its name."""
        found = {k[len(prefix) :]: v for k, v in self.left.items() if k.startswith(prefix)}
        for key in found:
            del self.left[prefix + key]
        return found

    def indexed(self) -> dict[str, list[dict[str, Any]]]:
        """``gen_ai.prompt.0.content``-style attributes, grouped into lists by prefix."""
        groups: dict[str, dict[int, dict[str, Any]]] = {}
        for key in [k for k in self.left if _INDEXED.match(k)]:
            match = _INDEXED.match(key)
            assert match is not None
            prefix, index, sub = match.groups()
            groups.setdefault(prefix, {}).setdefault(int(index), {})[
                sub.removeprefix("message.")
            ] = self.left.pop(key)
        return {prefix: [items[i] for i in sorted(items)] for prefix, items in groups.items()}


def read(attributes: Mapping[str, Any], *, content: bool = True) -> Columns:
    """The columns ``attributes`` fill; prompts and answers only when ``content``."""
    reader = _Reader(attributes)
    columns = Columns()
    columns.kind = _kind(reader)
    operation = reader.left.get("gen_ai.operation.name")
    columns.endpoint = _ENDPOINTS.get(operation) if isinstance(operation, str) else None
    requested = _read_identity(reader, columns)
    _read_usage(reader, columns)
    columns.params = _params(reader, requested)
    indexed = reader.indexed()
    inputs = [reader.take(name) for name in _INPUT_KEYS]
    outputs = [reader.take(name) for name in _OUTPUT_KEYS]
    if content:
        columns.input = _input(inputs, indexed)
        columns.output, finish = _output(outputs, indexed)
        columns.finish_reason = columns.finish_reason or finish
    columns.rest = reader.left
    return columns


def _kind(reader: _Reader) -> str:
    own = reader.left.get("modelcycle.span.kind")
    if isinstance(own, str) and own in KINDS:
        reader.take("modelcycle.span.kind")
        return own
    for name, table in (
        ("openinference.span.kind", _OPENINFERENCE_KINDS),
        ("traceloop.span.kind", _TRACELOOP_KINDS),
        ("gen_ai.operation.name", _OPERATION_KINDS),
        ("llm.request.type", _OPERATION_KINDS),
    ):
        value = reader.left.get(name)
        if isinstance(value, str) and value in table:
            return table[value]
    if any(
        name in reader.left
        for name in ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name")
    ):
        return "llm"
    return "span"


def _read_identity(reader: _Reader, columns: Columns) -> str | None:
    """Fills who and what; returns the requested model when the response names another."""
    association = reader.prefixed(_ASSOCIATION)
    requested = reader.left.get("gen_ai.request.model")
    columns.model = reader.text(
        "gen_ai.response.model", "llm.model_name", "gen_ai.request.model", limit=128
    )
    provider = reader.take("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
    if provider is not None:
        reader.left["gen_ai.provider.name"] = provider
    columns.deployment = reader.text("modelcycle.deployment", limit=64)
    columns.user_id = reader.text("modelcycle.user", "user.id", "enduser.id", limit=128)
    columns.session_id = reader.text(
        "modelcycle.session", "session.id", "gen_ai.conversation.id", limit=128
    )
    columns.user_id = columns.user_id or _opt_text(association.pop("user_id", None), 128)
    columns.session_id = columns.session_id or _opt_text(association.pop("session_id", None), 128)
    columns.request_id = reader.text("gen_ai.response.id", limit=64)
    columns.error_type = reader.text("error.type", limit=64)
    columns.status_code = reader.count("http.response.status_code", "http.status_code")
    stream = reader.take("modelcycle.stream", "gen_ai.request.stream", "gen_ai.is_streaming")
    columns.stream = stream is True or stream == "true"
    for source in (
        association,
        _json_object(reader.take("metadata")),
        _json_object(reader.take("modelcycle.metadata")),
    ):
        columns.metadata.update(source)
    return requested if isinstance(requested, str) and requested != columns.model else None


def _read_usage(reader: _Reader, columns: Columns) -> None:
    columns.input_tokens = (
        reader.count(
            "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"
        )
        or 0
    )
    columns.output_tokens = (
        reader.count(
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
        )
        or 0
    )
    columns.cached_tokens = reader.count(
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
    )
    columns.reasoning_tokens = reader.count(
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    )
    reader.take("gen_ai.usage.total_tokens", "llm.token_count.total", "llm.usage.total_tokens")
    cost = _number(reader.left.get("modelcycle.cost", reader.left.get("gen_ai.usage.cost")))
    if cost is not None and cost >= 0:
        reader.take("modelcycle.cost", "gen_ai.usage.cost")
        columns.cost = cost
    ttft_s = _number(reader.left.get("gen_ai.response.time_to_first_chunk"))
    if ttft_s is not None and ttft_s >= 0:
        reader.take("gen_ai.response.time_to_first_chunk")
        columns.ttft_ms = ttft_s * 1000
    finish = reader.take("gen_ai.response.finish_reasons", "llm.response.finish_reason")
    if isinstance(finish, list | tuple):
        finish = finish[0] if finish else None
    columns.finish_reason = None if finish is None else _short(str(finish), 32)


def _params(reader: _Reader, requested_model: str | None) -> dict[str, Any] | None:
    params: dict[str, Any] = {"model": requested_model} if requested_model else {}
    for name, key in _REQUEST_PARAMS.items():
        value = reader.take(name)
        if value is not None:
            params[key] = value
    params.update(_json_object(reader.take("llm.invocation_parameters")))
    return params or None


def _input(values: list[Any], indexed: Mapping[str, list[dict[str, Any]]]) -> str | None:
    own, messages, instructions, prompt, value, mime, entity = values
    if own is not None:
        return clip(_as_json_text(own))
    found = _messages(messages)
    if found is None:
        found = indexed.get("llm.input_messages") or indexed.get("gen_ai.prompt")
    if found is not None:
        system = _instructions(instructions)
        return clip(_dumps(system + [_message(m) for m in found]))
    if prompt is not None:
        return clip(_dumps(str(prompt)))
    if value is not None:
        return clip(_as_json_text(str(value)) if mime == "application/json" else _dumps(value))
    if entity is not None:
        return clip(_as_json_text(entity))
    return None


def _output(
    values: list[Any], indexed: Mapping[str, list[dict[str, Any]]]
) -> tuple[str | None, str | None]:
    own, messages, completion, value, _mime, entity = values
    if own is not None:
        return clip(str(own)), None
    found = _messages(messages)
    if found is None:
        found = indexed.get("llm.output_messages") or indexed.get("gen_ai.completion")
    if found:
        normalised = [_message(m) for m in found]
        finish = found[0].get("finish_reason")
        finish_text = _short(str(finish), 32) if finish is not None else None
        texts = [m.get("content") for m in normalised]
        if all(isinstance(t, str) for t in texts):
            return clip(str(texts[0]) if len(texts) == 1 else _dumps(texts)), finish_text
        return clip(_dumps(normalised)), finish_text
    for candidate in (completion, value, entity):
        if candidate is not None:
            return clip(str(candidate)), None
    return None, None


def _messages(value: Any) -> list[dict[str, Any]] | None:
    """``gen_ai.input.messages``/``output.messages``: a JSON string or an array of objects."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return [{"role": "user", "content": value}]
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        return value
    return None


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message as ``{role, content}`` when its parts are all text, else as it came."""
    parts = message.get("parts")
    if "content" in message or not isinstance(parts, list):
        return {k: v for k, v in message.items() if k != "finish_reason"}
    if all(isinstance(p, dict) and p.get("type") == "text" for p in parts):
        text = "\n".join(str(p.get("content", "")) for p in parts)
        return {"role": message.get("role"), "content": text}
    return {k: v for k, v in message.items() if k != "finish_reason"}


def _instructions(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    parts = _messages(value) if not isinstance(value, str) else None
    text = "\n".join(str(p.get("content", "")) for p in parts) if parts else str(value)
    return [{"role": "system", "content": text}]


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
    return dict(value) if isinstance(value, dict) else {}


def _as_json_text(value: Any) -> str:
    """``value`` when it is JSON text already, else ``value`` encoded as JSON."""
    if isinstance(value, str):
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            return _dumps(value)
        return value
    return _dumps(value)


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_COUNT:
        return value
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _short(text: str, limit: int) -> str:
    return text[:limit]


def _opt_text(value: Any, limit: int) -> str | None:
    return None if value is None else _short(str(value), limit)
