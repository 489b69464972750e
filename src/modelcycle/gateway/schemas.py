"""OpenAI request bodies, as the gateway accepts them.

Unknown fields are not refused, as OpenAI does, so that newer clients keep
working; known fields are validated with OpenAI's ranges and a bad value is a
400 that names the field. Fields the gateway does not interpret itself (tools,
response_format, ...) are kept and handed to backends as ``passthrough``: remote
OpenAI-compatible upstreams receive them, local engines ignore them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelcycle.backends import GenerationParams, Message
from modelcycle.backends.base import ResponseFormat
from modelcycle.errors import InvalidInput
from modelcycle.types import MAX_INT32

Endpoint = Literal["chat.completions", "completions", "embeddings"]

MAX_STOP = 4
MAX_CHOICES = 256
"""At most this many answers per request (``n`` times the number of prompts)."""

PromptInput = str | tuple[int, ...]
"""A completions prompt: text, or token ids."""


def _first_unencodable(data: Any) -> str | None:
    """The path of the first string in a JSON body that is not valid Unicode, if any.

    orjson refuses lone surrogates in one pass in C; only a body it refuses (for
    that or an integer beyond 64 bits) is walked to name the place.
    """
    try:
        orjson.dumps(data)
    except TypeError:
        return _unencodable(data, "")
    return None


def _unencodable(value: Any, path: str) -> str | None:
    """The path of the first string that is not valid Unicode (a lone surrogate), if any."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _unencodable(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Lenient):
    """One part of a message's content; only ``text`` parts are supported."""

    model_config = ConfigDict(extra="allow")  # kept for upstreams (passthrough)
    type: str
    text: str | None = None


class ChatMessage(_Lenient):
    """One message of a conversation."""

    model_config = ConfigDict(extra="allow")  # tool_calls, tool_call_id: kept for upstreams
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _string_or_parts(cls, value: Any) -> Any:
        # Checked up front so that the error names the field, not a member of the union.
        if value is None or isinstance(value, str | list):
            return value
        raise ValueError("content must be a string or a list of content parts")

    def text(self) -> str:
        """The content as plain text (text parts joined)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise InvalidInput(
                    f"content parts of type '{part.type}' are not supported; send text",
                    param="messages",
                )
            parts.append(part.text)
        return "".join(parts)


class StreamOptions(_Lenient):
    """Options of a streamed answer."""

    include_usage: bool = False
    """Send a last chunk with the token usage and no choices."""


class _Common(_Lenient):
    model_config = ConfigDict(extra="allow")  # tools, response_format...: kept for upstreams
    # Interpreted by the gateway itself, so never passed through as sent.
    _managed: ClassVar[frozenset[str]] = frozenset(
        {"model", "messages", "prompt", "stream", "stream_options", "echo"}
        | {"max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed"}
        | {"n"}  # one backend call per choice (``modelcycle.gateway.choices``)
    )

    model: str = Field(min_length=1, max_length=256, description="The deployment to call.")
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_INT32)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    user: str | None = Field(default=None, max_length=512)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    response_format: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        # JSON may carry lone surrogates ("\\ud800"); no engine can encode them.
        found = _first_unencodable(data)
        if found is not None:
            raise ValueError(f"{found} is not valid Unicode (a lone surrogate)")
        return data

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences are allowed")
        return value

    @field_validator("response_format")
    @classmethod
    def _known_format(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            parse_response_format(value)  # kept as sent (passthrough); parsed again later
        return value

    def _params(
        self, max_tokens: int | None, logprobs: int | None = None, echo: bool = False
    ) -> GenerationParams:
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return GenerationParams(
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=tuple(stop for stop in stops if stop) or None,
            seed=self.seed,
            passthrough=self.passthrough(),
            logprobs=logprobs,
            echo=echo,
            response_format=parse_response_format(self.response_format),
        )

    def passthrough(self) -> dict[str, Any] | None:
        """What a remote OpenAI-compatible upstream receives as sent; ``None`` when nothing.

        Every field the client sent except those the gateway interprets (the
        deployment name, streaming, the sampling parameters merged with the
        version's defaults, ``echo``); chat ``messages`` as sent when one of them
        carries more than a role and a text (tool calls, tool results, names).
        """
        # Plain attribute reads, not model_dump: this runs on every request.
        fields = {
            name: value
            for name in self.model_fields_set - self._managed
            if (value := getattr(self, name)) is not None
        }
        messages = self._raw_messages()
        if messages is not None:
            fields["messages"] = messages
        return fields or None

    def _raw_messages(self) -> list[dict[str, Any]] | None:
        return None

    @property
    def include_usage(self) -> bool:
        """Whether a streamed answer ends with a usage chunk."""
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Common):
    """Body of ``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_INT32)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    def _raw_messages(self) -> list[dict[str, Any]] | None:
        if all(
            not m.model_extra and m.name is None and not isinstance(m.content, list)
            for m in self.messages
        ):
            return None  # role + text: the backend rebuilds them from ``messages``
        return [m.model_dump(exclude_unset=True) for m in self.messages]

    def to_inference(self, context: CallContext | None = None) -> InferenceRequest:
        """The request as the gateway routes it (``context``: from the request's headers)."""
        messages = tuple(
            Message("system" if m.role == "developer" else m.role, m.text()) for m in self.messages
        )
        limit = self.max_completion_tokens or self.max_tokens
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidInput("top_logprobs requires logprobs to be true", param="top_logprobs")
        logprobs = (self.top_logprobs or 0) if self.logprobs else None
        return InferenceRequest(
            endpoint="chat.completions",
            deployment=self.model,
            messages=messages,
            prompt=None,
            params=self._params(limit, logprobs),
            user=self.user,
            stream=bool(self.stream),
            n=self.n or 1,
            context=context or NO_CONTEXT,
        )


class CompletionRequest(_Common):
    """Body of ``POST /v1/completions``."""

    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=5)
    best_of: int | None = Field(default=None, ge=1, le=20)
    max_tokens: int | None = Field(default=None, ge=0, le=MAX_INT32)
    """0 is allowed with ``echo``: score the prompt without generating."""

    @field_validator("prompt", mode="before")
    @classmethod
    def _text_or_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if not isinstance(value, list) or not value:
            raise ValueError(
                "prompt must be a string, a list of strings, a list of token ids "
                "or a list of lists of token ids (not empty)"
            )
        if all(isinstance(item, str) for item in value):
            return value
        if all(_token_ids(item) for item in (value if isinstance(value[0], list) else [value])):
            return value
        raise ValueError(
            "prompt must be a string, a list of strings, a list of token ids "
            f"(integers 0..{MAX_INT32}, not empty) or a list of such lists"
        )

    def prompts(self) -> tuple[PromptInput, ...]:
        """Every prompt of the request (token ids as tuples)."""
        value = self.prompt
        if isinstance(value, str):
            return (value,)
        if isinstance(value[0], str):
            return tuple(str(item) for item in value)
        if isinstance(value[0], int):
            return (tuple(int(item) for item in value),)
        return tuple(tuple(int(token) for token in item) for item in value)

    def to_inference(self, context: CallContext | None = None) -> InferenceRequest:
        """The request as the gateway routes it (``context``: from the request's headers)."""
        if self.best_of is not None and self.best_of > 1:
            raise InvalidInput(
                "best_of > 1 is not supported; send n for several samples", param="best_of"
            )
        if self.max_tokens == 0 and not self.echo:
            raise InvalidInput("max_tokens 0 is only allowed with echo", param="max_tokens")
        prompts = self.prompts()
        n = self.n or 1
        if len(prompts) * n > MAX_CHOICES:
            raise InvalidInput(
                f"at most {MAX_CHOICES} choices per request (n x prompts); "
                f"got {n} x {len(prompts)}",
                param="n",
            )
        single = len(prompts) == 1 and isinstance(prompts[0], str)
        return InferenceRequest(
            endpoint="completions",
            deployment=self.model,
            messages=None,
            prompt=prompts[0] if isinstance(prompts[0], str) else None,
            params=self._params(self.max_tokens, self.logprobs, self.echo),
            user=self.user,
            stream=bool(self.stream),
            n=n,
            prompts=None if single else prompts,
            context=context or NO_CONTEXT,
        )


MAX_INPUTS = 2048
"""Inputs of one embeddings request, as OpenAI allows."""


class EmbeddingRequest(_Lenient):
    """Body of ``POST /v1/embeddings``."""

    model: str = Field(min_length=1, max_length=256, description="The deployment to call.")
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=65_536)
    user: str | None = Field(default=None, max_length=512)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        found = _first_unencodable(data)
        if found is not None:
            raise ValueError(f"{found} is not valid Unicode (a lone surrogate)")
        return data

    @field_validator("input", mode="before")
    @classmethod
    def _inputs(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value:
                raise ValueError("input must not be an empty string")
            return value
        if not isinstance(value, list) or not value:
            raise ValueError("input must be a string or a non-empty list")
        if len(value) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} inputs per request")
        if all(isinstance(item, str) and item for item in value):
            return value
        if all(_token_ids(item) for item in (value if isinstance(value[0], list) else [value])):
            return value
        raise ValueError(
            "input must be a non-empty string, a list of them, a list of token ids "
            f"(integers 0..{MAX_INT32}) or a list of such lists"
        )

    def inputs(self) -> tuple[PromptInput, ...]:
        """Every input (token ids as tuples)."""
        value = self.input
        if isinstance(value, str):
            return (value,)
        if isinstance(value[0], str):
            return tuple(str(item) for item in value)
        if isinstance(value[0], int):
            return (tuple(int(item) for item in value),)
        return tuple(tuple(int(token) for token in item) for item in value)


def _token_ids(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(t, int) and not isinstance(t, bool) and 0 <= t <= MAX_INT32 for t in value
        )
    )


def parse_response_format(value: dict[str, Any] | None) -> ResponseFormat | None:
    """OpenAI's ``response_format`` as the backends take it; ``None`` for plain text.

    ``{"type": "json_object"}``; ``{"type": "json_schema", "json_schema": {"name",
    "schema", "strict"}}``; llama-cpp-python's ``{"type": "json_object",
    "schema": {...}}`` is read as a schema too.
    """
    if value is None:
        return None
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        schema = value.get("schema")
        if schema is None:
            return ResponseFormat("json_object")
        return _schema_format(schema, None)
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            raise ValueError("response_format.json_schema must be an object with a schema")
        name = spec.get("name")
        return _schema_format(spec.get("schema", {}), name if isinstance(name, str) else None)
    raise ValueError("response_format.type must be 'text', 'json_object' or 'json_schema'")


def _schema_format(schema: Any, name: str | None) -> ResponseFormat:
    if not isinstance(schema, dict):
        raise ValueError("response_format schema must be a JSON object")
    text = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode()
    return ResponseFormat("json_schema", text, name)


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who and what a request belongs to, from its headers, for its trace.

    ``user`` comes from ``X-Modelcycle-User`` (the body's ``user`` wins),
    ``session`` from ``X-Modelcycle-Session``, ``metadata`` from
    ``X-Modelcycle-Metadata`` (a JSON object) and the trace and parent span ids
    from a W3C ``traceparent`` header, so a gateway call nests under the
    application span that made it.
    """

    user: str | None = None
    session: str | None = None
    metadata: Mapping[str, Any] | None = None
    trace_id: str | None = None
    parent_span_id: str | None = None


NO_CONTEXT = CallContext()


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    """A chat or completion request, independent of the wire format."""

    endpoint: Endpoint
    deployment: str
    messages: tuple[Message, ...] | None
    prompt: str | None
    params: GenerationParams
    user: str | None
    stream: bool
    n: int = 1
    """Samples per prompt."""
    prompts: tuple[PromptInput, ...] | None = None
    """Completions with several prompts or token ids: all of them (``prompt`` is the
    first when it is text); ``None`` when ``prompt`` is the only one."""
    features: frozenset[str] = frozenset()
    """Optional backend features needed beyond what ``params`` says (``dimensions``)."""
    context: CallContext = NO_CONTEXT
    """Trace attributes from the request's headers."""
