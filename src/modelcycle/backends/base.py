"""The ``Backend`` protocol every inference engine implements, and its value types.

A backend serves one model version: it is built from the version's ``source``
and ``params`` by a factory registered through ``modelcycle_register_backends``,
must not load anything until its first call, and may be called concurrently
from one event loop (it queues or batches internally; it never blocks the loop).

Failures raise ``modelcycle.errors.UpstreamError`` (the gateway retries and
falls back); a request the engine can never serve (a prompt longer than the
context window) raises ``InvalidInput``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ResidentModel:
    """A model held in this process's memory by a backend (read by ``/metrics``)."""

    kind: str
    source: str
    size_bytes: int | None
    """Bytes of its weights where the backend knows them (a GGUF file's size, a
    transformers model's parameters and buffers); ``None`` otherwise."""


# Message, GenerationParams and ResponseFormat keep a __dict__ (no slots): every
# traced request's event is written with orjson, which reads a dict-backed
# dataclass four times faster (measured: 0.45 -> 0.11 µs for a message, 0.59 ->
# 0.14 µs for the parameters).
@dataclass(frozen=True)
class Message:
    """One chat message, its content flattened to text."""

    role: str
    content: str


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters of one request; ``None`` means "the version's default"."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    passthrough: Mapping[str, Any] | None = None
    """Fields of the client's request that a remote OpenAI-compatible upstream receives
    as sent (``tools``, ``tool_choice``, ``response_format``, raw ``messages`` with tool
    calls...); local engines ignore them. ``None`` when the request has none."""
    logprobs: int | None = None
    """Return each generated token's log-probability and this many likeliest
    alternatives (0 for none); ``None``: no log-probabilities. Backends that are not
    ``Capable`` of ``"logprobs"`` never receive it."""
    echo: bool = False
    """Completions only: score the prompt too (``Completion.prompt_logprobs``)."""
    response_format: ResponseFormat | None = None
    """Constrain the answer to JSON (OpenAI's JSON mode or a JSON schema)."""


@dataclass(frozen=True)
class ResponseFormat:
    """OpenAI's ``response_format`` other than ``text``: JSON mode or a JSON schema."""

    type: str
    """``json_object`` (any JSON object) or ``json_schema``."""
    schema: str | None = None
    """With ``json_schema``: the schema as canonical JSON text (hashable, cacheable)."""
    name: str | None = None


@dataclass(frozen=True, slots=True)
class TopLogprob:
    """One of the likeliest tokens at a position."""

    token: str
    logprob: float
    bytes: tuple[int, ...]
    """The token's UTF-8 bytes (a token may hold part of a character)."""


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """A token of the prompt or the answer, with its log-probability under the model."""

    token: str
    logprob: float | None
    """``None`` for the first token of a prompt (nothing precedes it)."""
    bytes: tuple[int, ...]
    top: tuple[TopLogprob, ...] | None = None
    """The likeliest tokens at this position, most likely first (``None`` with ``logprob``)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole answer: its text, why generation stopped, and the token counts."""

    text: str
    finish_reason: str
    usage: Usage
    tool_calls: tuple[Mapping[str, Any], ...] | None = None
    """Tool calls the model asked for, in OpenAI's shape (``id``, ``type``, ``function``)."""
    logprobs: tuple[TokenLogprob, ...] | None = None
    """The answer's tokens with their log-probabilities (when ``params.logprobs`` is set)."""
    prompt_logprobs: tuple[TokenLogprob, ...] | None = None
    """With ``params.echo`` and ``params.logprobs``: the prompt's tokens, scored."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a streamed answer; the last one carries ``finish_reason`` and ``usage``."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[Mapping[str, Any], ...] | None = None
    """Pieces of tool calls, in OpenAI's streamed shape (``index``, then ``id``,
    ``function.name`` and pieces of ``function.arguments``)."""
    logprobs: tuple[TokenLogprob, ...] | None = None
    """The tokens of this piece with their log-probabilities (when requested)."""
    index: int = 0
    """The choice this piece belongs to (several with ``n`` > 1 or several prompts)."""


@runtime_checkable
class Backend(Protocol):
    """An inference engine serving one model version."""

    async def chat(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """Answer a conversation."""
        ...

    async def complete(self, prompt: str, params: GenerationParams) -> Completion:
        """Continue a plain-text prompt."""
        ...

    def stream_chat(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        """Answer a conversation piece by piece."""
        ...

    def stream_complete(self, prompt: str, params: GenerationParams) -> AsyncIterator[Chunk]:
        """Continue a prompt piece by piece."""
        ...

    async def close(self) -> None:
        """Release connections and engines (the backend is not used afterwards)."""
        ...


BackendFactory = Callable[[str, Mapping[str, Any]], Backend]
"""Builds a backend from a version's ``source`` and ``params`` (lazily: no loading yet)."""


def merge_params(defaults: Mapping[str, Any], request: GenerationParams) -> GenerationParams:
    """The request's parameters, with the version's ``defaults`` where the request has none.

    Version params use the OpenAI names: ``max_tokens``, ``temperature``,
    ``top_p``, ``stop`` (a string or a list) and ``seed``.
    """
    stop = request.stop
    if stop is None and defaults.get("stop") is not None:
        stop = as_stop(defaults["stop"])
    return GenerationParams(
        max_tokens=request.max_tokens
        if request.max_tokens is not None
        else _int(defaults.get("max_tokens")),
        temperature=request.temperature
        if request.temperature is not None
        else _float(defaults.get("temperature")),
        top_p=request.top_p if request.top_p is not None else _float(defaults.get("top_p")),
        stop=stop,
        seed=request.seed if request.seed is not None else _int(defaults.get("seed")),
        passthrough=request.passthrough,
        logprobs=request.logprobs,
        echo=request.echo,
        response_format=request.response_format,
    )


def as_stop(value: Any) -> tuple[str, ...] | None:
    """A stop parameter (a string, a list of strings or nothing) as a tuple."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(str(item) for item in value)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class CallScope:
    """Who a backend call is made for: the project of the calling API key.

    The gateway sets ``call_scope`` around each backend call. Backend instances
    are shared by every project whose versions have the same kind, source and
    params, so per-project state (an ``openai`` version's ``api_key_secret``) is
    looked up in this scope, never cached on the instance.
    """

    project_id: int
    project: str


call_scope: ContextVar[CallScope | None] = ContextVar("modelcycle_call_scope", default=None)
"""The ``CallScope`` of the backend call running in this task (``None`` outside one)."""
