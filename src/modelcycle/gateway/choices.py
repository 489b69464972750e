"""The choices of one request: ``n`` samples of each prompt, and the features they need.

OpenAI numbers the choices of a completions request prompt by prompt:
``index = prompt_index * n + sample``; a chat request has one prompt. Every
choice is one backend call (sample ``i`` of a request with a ``seed`` uses
``seed + i``, so the samples differ but the request is reproducible; at
temperature 0 they are all the same). Usage counts each prompt once and every
answer's tokens.

A stream of several choices sends them one after another, each chunk tagged
with its choice's ``index``; the last choice's finishing chunk carries the
usage of the whole request.

Features a request needs (log-probabilities, echo of a scored prompt, JSON
mode, token-id prompts) are checked against the backend that will serve it
(``modelcycle.backends.capabilities``): a backend that cannot honour one is a
400 naming its kind, never a silently ignored parameter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from modelcycle.backends import Backend, Chunk, Completion, GenerationParams, Usage
from modelcycle.backends.capabilities import (
    ECHO,
    LOGPROBS,
    RESPONSE_FORMAT,
    Capable,
    Embedder,
    Tokenizing,
)
from modelcycle.errors import InvalidInput, UpstreamError
from modelcycle.gateway.schemas import InferenceRequest, PromptInput

_SEED_MASK = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Choice:
    """One answer of a request."""

    index: int
    completion: Completion
    echo: str = ""
    """Text that goes before the answer (the prompt, for completions with ``echo``)."""


@dataclass(frozen=True, slots=True)
class Choices:
    """Every answer of a request, in index order, and the usage of them all."""

    items: tuple[Choice, ...]
    usage: Usage

    @property
    def first(self) -> Completion:
        """The first answer."""
        return self.items[0].completion


def count(request: InferenceRequest) -> int:
    """How many choices the request asks for."""
    prompts = len(request.prompts) if request.prompts is not None else 1
    return prompts * request.n


def requires(backend: Backend, kind: str, request: InferenceRequest) -> None:
    """``InvalidInput`` naming ``kind`` when the backend cannot serve the request as asked."""
    params = request.params
    needed = [(feature, feature) for feature in sorted(request.features)]
    if params.logprobs is not None:
        needed.append((LOGPROBS, "logprobs"))
    if params.echo and params.logprobs is not None:
        needed.append((ECHO, "echo"))
    if params.response_format is not None:
        needed.append((RESPONSE_FORMAT, "response_format"))
    for feature, param in needed:
        if isinstance(backend, Capable):
            supported = backend.supports(feature)
        else:  # it reaches the backend in ``passthrough``, for an upstream to enforce
            supported = feature == RESPONSE_FORMAT
        if not supported:
            raise InvalidInput(
                f"{param} is not supported by this deployment's backend (kind '{kind}')",
                param=param,
                code="unsupported_parameter",
            )
    if request.endpoint == "embeddings":
        if not isinstance(backend, Embedder):
            raise InvalidInput(
                f"embeddings are not supported by this deployment's backend (kind '{kind}')",
                param="model",
                code="unsupported_parameter",
            )
        return
    tokens = request.prompts is not None and any(not isinstance(p, str) for p in request.prompts)
    if tokens and not isinstance(backend, Tokenizing):
        raise InvalidInput(
            f"token-id prompts are not supported by this deployment's backend (kind '{kind}')",
            param="prompt",
            code="unsupported_parameter",
        )


def _params(params: GenerationParams, sample: int) -> GenerationParams:
    if sample == 0 or params.seed is None:
        return params
    return replace(params, seed=(params.seed + sample) & _SEED_MASK)


def _prompts(request: InferenceRequest) -> Sequence[PromptInput | None]:
    if request.messages is not None:
        return [None]
    return request.prompts if request.prompts is not None else [request.prompt or ""]


async def _one(
    backend: Backend, request: InferenceRequest, prompt: PromptInput | None, sample: int
) -> Completion:
    params = _params(request.params, sample)
    if prompt is None:
        assert request.messages is not None
        return await backend.chat(request.messages, params)
    if isinstance(prompt, str):
        return await backend.complete(prompt, params)
    assert isinstance(backend, Tokenizing)  # checked by ``requires``
    return await backend.complete_tokens(prompt, params)


async def _echo(backend: Backend, request: InferenceRequest, prompt: PromptInput | None) -> str:
    if not request.params.echo or prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    assert isinstance(backend, Tokenizing)
    return await backend.detokenize(prompt)


async def call_whole(backend: Backend, request: InferenceRequest) -> Choices:
    """Every choice of the request, whole."""
    prompts = _prompts(request)
    n = request.n
    jobs = [_one(backend, request, prompt, sample) for prompt in prompts for sample in range(n)]
    completions = await asyncio.gather(*jobs) if len(jobs) > 1 else [await jobs[0]]
    items = []
    prompt_tokens = completion_tokens = 0
    for p, prompt in enumerate(prompts):
        echo = await _echo(backend, request, prompt)
        prompt_tokens += completions[p * n].usage.prompt_tokens
        for sample in range(n):
            completion = completions[p * n + sample]
            completion_tokens += completion.usage.completion_tokens
            items.append(Choice(p * n + sample, completion, echo))
    return Choices(tuple(items), Usage(prompt_tokens, completion_tokens))


def _open(
    backend: Backend, request: InferenceRequest, prompt: PromptInput | None, sample: int
) -> AsyncIterator[Chunk]:
    params = _params(request.params, sample)
    if prompt is None:
        assert request.messages is not None
        return backend.stream_chat(request.messages, params)
    if isinstance(prompt, str):
        return backend.stream_complete(prompt, params)
    assert isinstance(backend, Tokenizing)
    return backend.stream_complete_tokens(prompt, params)


async def open_stream(
    backend: Backend, request: InferenceRequest
) -> tuple[AsyncIterator[Chunk], Chunk]:
    """A stream of every choice, and its first chunk (the backend answered before it)."""
    if request.params.echo and request.params.logprobs is not None:
        raise InvalidInput(
            "echo with logprobs cannot be streamed; send stream=false", param="stream"
        )
    prompts = _prompts(request)
    first_stream = _open(backend, request, prompts[0], 0)
    try:
        first = await anext(first_stream)
    except StopAsyncIteration:
        raise UpstreamError("the backend ended the stream before any output") from None
    except BaseException:
        await _aclose(first_stream)
        raise
    merged = _merged(backend, request, prompts, first_stream, first)
    return merged, await anext(merged)


async def _merged(
    backend: Backend,
    request: InferenceRequest,
    prompts: Sequence[PromptInput | None],
    stream: AsyncIterator[Chunk],
    pending: Chunk | None,
) -> AsyncIterator[Chunk]:
    n, last = request.n, len(prompts) * request.n - 1
    prompt_tokens = completion_tokens = 0
    for p, prompt in enumerate(prompts):
        for sample in range(n):
            index = p * n + sample
            if index:
                stream, pending = _open(backend, request, prompt, sample), None
            try:
                echo = await _echo(backend, request, prompt)
                if echo:
                    yield Chunk(echo, index=index)
                chunk = pending
                while True:
                    if chunk is None:
                        try:
                            chunk = await anext(stream)
                        except StopAsyncIteration:
                            break
                    if chunk.finish_reason is None:
                        yield replace(chunk, index=index)
                        chunk = None
                        continue
                    usage = chunk.usage or Usage(0, 0)
                    prompt_tokens += usage.prompt_tokens if sample == 0 else 0
                    completion_tokens += usage.completion_tokens
                    total = Usage(prompt_tokens, completion_tokens) if index == last else None
                    yield replace(chunk, index=index, usage=total)
                    break
            finally:
                await _aclose(stream)


async def _aclose(iterator: AsyncIterator[Chunk]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
