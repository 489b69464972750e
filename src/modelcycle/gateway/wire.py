"""OpenAI's wire format: response bodies and server-sent events, serialised with orjson."""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import orjson

from modelcycle.backends import Chunk, Completion, Usage
from modelcycle.backends.capabilities import Embeddings
from modelcycle.deploy import Deployment
from modelcycle.errors import ModelcycleError
from modelcycle.gateway.choices import Choice
from modelcycle.gateway.schemas import Endpoint
from modelcycle.gateway.service import Served, ServedStream
from modelcycle.gateway.wire_logprobs import (
    TextOffsets,
    chat_content,
    chat_logprobs,
    text_logprobs,
)

DONE = b"data: [DONE]\n\n"
OWNER = "modelcycle"


def usage_json(usage: Usage) -> dict[str, int]:
    """OpenAI's ``usage`` object."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _fingerprint(model: str, version: int) -> str:
    return f"{model}@{version}"


def completion_body(served: Served, endpoint: Endpoint, *, echo_prompt: str | None = None) -> bytes:
    """The JSON body of a whole ``chat.completion`` or ``text_completion``."""
    completion = served.completion
    items = served.choices or (Choice(0, completion, echo_prompt or ""),)
    head: dict[str, Any] = {
        "created": served.created,
        "model": served.deployment,
        "system_fingerprint": _fingerprint(served.model, served.version),
    }
    if endpoint == "chat.completions":
        body: dict[str, Any] = {
            "id": f"chatcmpl-{served.request_id}",
            "object": "chat.completion",
            **head,
            "choices": [
                {
                    "index": item.index,
                    "message": _message(item.completion),
                    "logprobs": chat_logprobs(item.completion),
                    "finish_reason": item.completion.finish_reason,
                }
                for item in items
            ],
        }
    else:
        body = {
            "id": f"cmpl-{served.request_id}",
            "object": "text_completion",
            **head,
            "choices": [
                {
                    "index": item.index,
                    "text": item.echo + item.completion.text,
                    "logprobs": text_logprobs(item.completion, item.echo),
                    "finish_reason": item.completion.finish_reason,
                }
                for item in items
            ],
        }
    body["usage"] = usage_json(served.usage or completion.usage)
    return orjson.dumps(body)


def _message(completion: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.text, "refusal": None}
    if completion.tool_calls:
        # As OpenAI sends it: no text next to the calls is null, not "".
        message["content"] = completion.text or None
        message["tool_calls"] = list(completion.tool_calls)
    return message


def _event(body: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(body) + b"\n\n"


def error_event(exc: ModelcycleError) -> bytes:
    """An SSE event carrying an OpenAI error object (a stream that broke after it began)."""
    return _event(
        {
            "error": {
                "message": exc.message,
                "type": exc.error_type,
                "param": exc.param,
                "code": exc.code,
            }
        }
    )


class _Chunks:
    """Builds the chunk events of one stream."""

    def __init__(self, stream: ServedStream, endpoint: Endpoint, include_usage: bool):
        self.chat = endpoint == "chat.completions"
        self.head: dict[str, Any] = {
            "id": f"{'chatcmpl' if self.chat else 'cmpl'}-{stream.request_id}",
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": stream.created,
            "model": stream.deployment,
            "system_fingerprint": _fingerprint(stream.model, stream.version),
        }
        self.tail: dict[str, Any] = {"usage": None} if include_usage else {}

    def choice(
        self,
        text: str | None,
        finish: str | None,
        *,
        role: bool = False,
        tool_calls: Sequence[Mapping[str, Any]] | None = None,
        index: int = 0,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if text:
                delta["content"] = text
            if tool_calls:
                delta["tool_calls"] = list(tool_calls)
            item: dict[str, Any] = {"index": index, "delta": delta}
        else:
            item = {"index": index, "text": text or ""}
        item["logprobs"] = logprobs
        item["finish_reason"] = finish
        return _event({**self.head, "choices": [item], **self.tail})

    def usage(self, usage: Usage | None) -> bytes:
        return _event({**self.head, "choices": [], "usage": usage_json(usage or Usage(0, 0))})

    def logprobs(self, chunk: Chunk, offsets: dict[int, TextOffsets]) -> dict[str, Any] | None:
        """A chunk's ``logprobs``; completions' ``text_offset`` runs on per choice."""
        running = offsets.setdefault(chunk.index, TextOffsets())
        if chunk.logprobs is None:
            running.skip(chunk.text)
            return None
        if self.chat:
            return {"content": chat_content(chunk.logprobs), "refusal": None}
        return running.body(chunk.logprobs)


async def sse_events(
    stream: ServedStream,
    endpoint: Endpoint,
    *,
    include_usage: bool,
    echo_prompt: str | None = None,
) -> AsyncIterator[bytes]:
    """The SSE events OpenAI sends for a streamed answer, ``[DONE]`` last.

    Chat: a first chunk with ``delta.role``, one per piece of content, one with
    ``finish_reason``, then (with ``include_usage``) one with ``usage`` and no
    choices. A failure mid-stream ends with an error event and no ``[DONE]``.
    """
    events = _Chunks(stream, endpoint, include_usage)
    started = {0}  # chat choices whose first chunk (the role) went out
    offsets: dict[int, TextOffsets] = {}
    if events.chat:
        yield events.choice(None, None, role=True)
    elif echo_prompt:
        yield events.choice(echo_prompt, None)
    usage: Usage | None = None
    try:
        async with aclosing(stream.chunks()) as chunks:
            async for chunk in chunks:
                index = chunk.index
                if events.chat and index not in started:  # n > 1: each choice starts so
                    started.add(index)
                    yield events.choice(None, None, role=True, index=index)
                if chunk.text or chunk.tool_calls or chunk.logprobs:
                    logprobs = events.logprobs(chunk, offsets)
                    tools = chunk.tool_calls
                    yield events.choice(
                        chunk.text, None, tool_calls=tools, index=index, logprobs=logprobs
                    )
                if chunk.finish_reason is not None:
                    usage = chunk.usage
                    yield events.choice(None, chunk.finish_reason, index=index)
    except ModelcycleError as exc:
        yield error_event(exc)
        return
    if include_usage:
        yield events.usage(usage)
    yield DONE


def embeddings_body(result: Embeddings, model: str, encoding_format: str) -> bytes:
    """``POST /v1/embeddings``: OpenAI's list of embeddings (``base64``: float32, little-endian)."""
    data = []
    for index, vector in enumerate(result.vectors):
        value: list[float] | str = vector
        if encoding_format == "base64":
            packed = array("f", vector)
            if sys.byteorder == "big":
                packed.byteswap()
            value = base64.b64encode(packed.tobytes()).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": value})
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})


def models_body(deployments: list[Deployment]) -> bytes:
    """``GET /v1/models``: the deployments, in OpenAI's list shape."""
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {
                    "id": deployment.name,
                    "object": "model",
                    "created": int(deployment.created_at.timestamp()),
                    "owned_by": OWNER,
                }
                for deployment in deployments
            ],
        }
    )
