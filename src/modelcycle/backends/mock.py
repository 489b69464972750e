"""A deterministic backend for tests: scripted or echoed answers, latency and failures.

Configured by its source and params (params win)::

    mock://echo                         answer with the last user message / the prompt
    mock://script?reply=Hi&reply=Bye    answer "Hi", then "Bye", then "Hi" again...
    {"replies": ["Hi", "Bye"]}          the same, as version params

Other params: ``latency_ms`` (before the first token), ``chunk_delay_ms``
(between streamed chunks), ``fail`` (every call fails), ``fail_first`` (the
first N calls fail), ``fail_mid_stream`` (a stream breaks after N chunks) and
``error`` (the failure's message). Streams split the answer into words; token
counts are word counts. ``max_tokens`` and ``stop`` are honoured, and so are
``system_prompt`` and ``few_shot`` (``modelcycle.backends.prompting``): each
``MockCall`` of a chat holds the messages as the model saw them.

It also serves every optional feature (``modelcycle.backends.capabilities``),
deterministically: log-probabilities and echo, JSON mode, its own word
tokenizer and token-id prompts, and embeddings (params ``embedding_dim``,
default 16, and ``context_length``, default 4096); see
``modelcycle.backends.mock_features``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from modelcycle.backends import mock_features as features
from modelcycle.backends.base import Chunk, Completion, GenerationParams, Message, Usage
from modelcycle.backends.capabilities import FEATURES, Embeddings, TokenizerInfo
from modelcycle.backends.prompting import last_user_text, with_prompt_params
from modelcycle.errors import InvalidInput, UpstreamError

_WORDS = re.compile(r"\s*\S+")


@dataclass
class MockCall:
    """One call the mock received (for assertions)."""

    kind: str
    prompt: str
    params: GenerationParams
    messages: tuple[Message, ...] = ()
    """A chat's messages with the version's prompt params applied (empty for completions)."""


@dataclass
class MockBackend:
    """Scripted answers with configurable latency and failures; see the module docstring."""

    mode: str = "echo"
    replies: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    fail: bool = False
    fail_first: int = 0
    fail_mid_stream: int | None = None
    error: str = "mock backend failure"
    embedding_dim: int = features.EMBEDDING_DIM
    context_length: int = features.CONTEXT_LENGTH
    calls: list[MockCall] = field(default_factory=list)
    prompt_params: dict[str, Any] = field(default_factory=dict)
    """The version's ``system_prompt`` and ``few_shot``, applied to every chat."""
    vocabulary: features.WordVocabulary = field(default_factory=features.WordVocabulary)

    @classmethod
    def from_source(cls, source: str, params: Mapping[str, Any] | None = None) -> MockBackend:
        """Build from ``mock://MODE?k=v`` and a version's params (the factory of kind ``mock``)."""
        parts = urlsplit(source)
        if parts.scheme != "mock":
            raise InvalidInput(f"mock backend source must start with mock://, got {source!r}")
        query = parse_qs(parts.query)
        options: dict[str, Any] = {key: values[-1] for key, values in query.items()}
        if "reply" in query:
            options["replies"] = query["reply"]
        options.pop("reply", None)
        options.update(params or {})
        replies = options.get("replies") or []
        return cls(
            mode=parts.netloc or "echo",
            replies=[str(reply) for reply in replies],
            latency_ms=float(options.get("latency_ms", 0)),
            chunk_delay_ms=float(options.get("chunk_delay_ms", 0)),
            fail=_flag(options.get("fail", parts.netloc == "fail")),
            fail_first=int(options.get("fail_first", 0)),
            fail_mid_stream=_opt_int(options.get("fail_mid_stream")),
            error=str(options.get("error", "mock backend failure")),
            embedding_dim=int(options.get("embedding_dim", features.EMBEDDING_DIM)),
            context_length=int(options.get("context_length", features.CONTEXT_LENGTH)),
            prompt_params={
                key: options[key] for key in ("system_prompt", "few_shot") if key in options
            },
        )

    # -- Backend ---------------------------------------------------------------------

    async def chat(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """Answer with the next scripted reply, or echo the last user message."""
        seen = with_prompt_params(messages, self.prompt_params)
        return await self._whole("chat", last_user_text(seen), params, seen)

    async def complete(self, prompt: str, params: GenerationParams) -> Completion:
        """Answer with the next scripted reply, or echo the prompt."""
        return await self._whole("complete", prompt, params)

    def stream_chat(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        """Stream the answer word by word."""
        seen = with_prompt_params(messages, self.prompt_params)
        return self._stream("chat", last_user_text(seen), params, seen)

    def stream_complete(self, prompt: str, params: GenerationParams) -> AsyncIterator[Chunk]:
        """Stream the answer word by word."""
        return self._stream("complete", prompt, params)

    async def close(self) -> None:
        """Nothing to release."""

    # -- Capable, Tokenizing, Embedder -----------------------------------------------

    def supports(self, feature: str) -> bool:
        """Every optional feature."""
        return feature in FEATURES

    async def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        """Word ids (the mock has no special tokens to add)."""
        return self.vocabulary.encode(text)

    async def tokenize_chat(self, messages: Sequence[Message]) -> list[int]:
        """The ids of the last user message (what the mock answers from)."""
        return self.vocabulary.encode(last_user_text(messages))

    async def detokenize(self, tokens: Sequence[int]) -> str:
        """The words of ``tokens``, joined."""
        return self.vocabulary.decode(tokens, param="tokens")

    async def tokenizer_info(self) -> TokenizerInfo:
        """The word tokenizer's configuration."""
        return TokenizerInfo(
            tokenizer_class="MockWordTokenizer",
            max_model_len=self.context_length,
            vocab_size=len(self.vocabulary),
        )

    async def complete_tokens(self, tokens: Sequence[int], params: GenerationParams) -> Completion:
        """Continue the text of ``tokens``."""
        return await self.complete(self.vocabulary.decode(tokens, param="prompt"), params)

    def stream_complete_tokens(
        self, tokens: Sequence[int], params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        """Stream the continuation of the text of ``tokens``."""
        return self.stream_complete(self.vocabulary.decode(tokens, param="prompt"), params)

    async def embed(
        self, inputs: Sequence[str | Sequence[int]], *, dimensions: int | None
    ) -> Embeddings:
        """A deterministic unit vector per input (shortened to ``dimensions``)."""
        if dimensions is not None and dimensions > self.embedding_dim:
            raise InvalidInput(
                f"dimensions must be at most {self.embedding_dim} for this model",
                param="dimensions",
            )
        texts = [
            item if isinstance(item, str) else self.vocabulary.decode(item, param="input")
            for item in inputs
        ]
        vectors = [
            features.shorten(features.embedding(text, self.embedding_dim), dimensions)
            for text in texts
        ]
        return Embeddings(vectors, sum(len(features.words(text)) for text in texts))

    # -- internals -------------------------------------------------------------------

    def _start(
        self, kind: str, prompt: str, params: GenerationParams, messages: tuple[Message, ...]
    ) -> tuple[list[str], str]:
        self.calls.append(MockCall(kind, prompt, params, messages))
        if self.fail or len(self.calls) <= self.fail_first:
            raise UpstreamError(self.error)
        text = self.replies[(len(self.calls) - 1) % len(self.replies)] if self.replies else prompt
        if params.response_format is not None:
            text = features.as_json(text, params.response_format)
        finish = "stop"
        for stop in params.stop or ():
            if stop and stop in text:
                text = text[: text.index(stop)]
        words = _WORDS.findall(text)
        if params.max_tokens is not None and len(words) > params.max_tokens:
            words, finish = words[: params.max_tokens], "length"
        return words, finish

    async def _whole(
        self, kind: str, prompt: str, params: GenerationParams, messages: tuple[Message, ...] = ()
    ) -> Completion:
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        words, finish = self._start(kind, prompt, params, messages)
        usage = Usage(len(_WORDS.findall(prompt)), len(words))
        top_n = params.logprobs
        if top_n is None:
            return Completion("".join(words), finish, usage)
        return Completion(
            "".join(words),
            finish,
            usage,
            logprobs=tuple(features.scored(word, top_n) for word in words),
            prompt_logprobs=features.scored_text(prompt, top_n, prompt=True)
            if params.echo
            else None,
        )

    async def _stream(
        self, kind: str, prompt: str, params: GenerationParams, messages: tuple[Message, ...] = ()
    ) -> AsyncIterator[Chunk]:
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        words, finish = self._start(kind, prompt, params, messages)
        for index, word in enumerate(words):
            if self.fail_mid_stream is not None and index >= self.fail_mid_stream:
                raise UpstreamError(f"{self.error} (stream cut after {index} chunks)")
            if index and self.chunk_delay_ms:
                await asyncio.sleep(self.chunk_delay_ms / 1000)
            if params.logprobs is None:
                yield Chunk(word)
            else:
                yield Chunk(word, logprobs=(features.scored(word, params.logprobs),))
        yield Chunk("", finish, Usage(len(_WORDS.findall(prompt)), len(words)))


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
