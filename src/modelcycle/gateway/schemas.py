"""OpenAI request bodies, as the gateway accepts them.

Unknown fields are ignored, as OpenAI does, so that newer clients keep working;
known fields are validated with OpenAI's ranges and a bad value is a 400 that
names the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelcycle.backends import GenerationParams, Message
from modelcycle.errors import InvalidInput
from modelcycle.types import MAX_INT32

Endpoint = Literal["chat.completions", "completions"]

MAX_STOP = 4


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

    type: str
    text: str | None = None


class ChatMessage(_Lenient):
    """One message of a conversation."""

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

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        # JSON may carry lone surrogates ("\\ud800"); no engine can encode them.
        found = _unencodable(data, "")
        if found is not None:
            raise ValueError(f"{found} is not valid Unicode (a lone surrogate)")
        return data

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences are allowed")
        return value

    def _params(self, max_tokens: int | None) -> GenerationParams:
        if self.n is not None and self.n > 1:
            raise InvalidInput("n > 1 is not supported yet; send n=1 or omit it", param="n")
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return GenerationParams(
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=tuple(stop for stop in stops if stop) or None,
            seed=self.seed,
        )

    @property
    def include_usage(self) -> bool:
        """Whether a streamed answer ends with a usage chunk."""
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Common):
    """Body of ``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_INT32)

    def to_inference(self) -> InferenceRequest:
        """The request as the gateway routes it."""
        messages = tuple(
            Message("system" if m.role == "developer" else m.role, m.text()) for m in self.messages
        )
        limit = self.max_completion_tokens or self.max_tokens
        return InferenceRequest(
            endpoint="chat.completions",
            deployment=self.model,
            messages=messages,
            prompt=None,
            params=self._params(limit),
            user=self.user,
            stream=bool(self.stream),
        )


class CompletionRequest(_Common):
    """Body of ``POST /v1/completions``."""

    prompt: str | list[str]
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=5)
    best_of: int | None = Field(default=None, ge=1, le=20)

    @field_validator("prompt", mode="before")
    @classmethod
    def _string_or_strings(cls, value: Any) -> Any:
        if isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            return value
        raise ValueError("prompt must be a string or a list of strings (token ids: not yet)")

    def to_inference(self) -> InferenceRequest:
        """The request as the gateway routes it."""
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise InvalidInput(
                    "send one prompt per request (a list of several is not supported yet)",
                    param="prompt",
                )
            prompt = self.prompt[0]
        else:
            prompt = self.prompt
        if self.logprobs:
            raise InvalidInput("logprobs are not supported yet", param="logprobs")
        if self.best_of is not None and self.best_of > 1:
            raise InvalidInput("best_of > 1 is not supported yet", param="best_of")
        return InferenceRequest(
            endpoint="completions",
            deployment=self.model,
            messages=None,
            prompt=prompt,
            params=self._params(self.max_tokens),
            user=self.user,
            stream=bool(self.stream),
        )


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
