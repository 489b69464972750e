"""OpenAI's wire format: response bodies and server-sent events, serialised with orjson."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson

from modelcycle.backends import Usage
from modelcycle.deploy import Deployment
from modelcycle.errors import ModelcycleError
from modelcycle.gateway.schemas import Endpoint
from modelcycle.gateway.service import Served, ServedStream

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
                    "index": 0,
                    "message": {"role": "assistant", "content": completion.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": completion.finish_reason,
                }
            ],
        }
    else:
        body = {
            "id": f"cmpl-{served.request_id}",
            "object": "text_completion",
            **head,
            "choices": [
                {
                    "index": 0,
                    "text": (echo_prompt or "") + completion.text,
                    "logprobs": None,
                    "finish_reason": completion.finish_reason,
                }
            ],
        }
    body["usage"] = usage_json(completion.usage)
    return orjson.dumps(body)


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

    def choice(self, text: str | None, finish: str | None, *, role: bool = False) -> bytes:
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if text:
                delta["content"] = text
            item: dict[str, Any] = {"index": 0, "delta": delta}
        else:
            item = {"index": 0, "text": text or ""}
        item["logprobs"] = None
        item["finish_reason"] = finish
        return _event({**self.head, "choices": [item], **self.tail})

    def usage(self, usage: Usage | None) -> bytes:
        return _event({**self.head, "choices": [], "usage": usage_json(usage or Usage(0, 0))})


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
    if events.chat:
        yield events.choice(None, None, role=True)
    elif echo_prompt:
        yield events.choice(echo_prompt, None)
    usage: Usage | None = None
    try:
        async with aclosing(stream.chunks()) as chunks:
            async for chunk in chunks:
                if chunk.text:
                    yield events.choice(chunk.text, None)
                if chunk.finish_reason is not None:
                    usage = chunk.usage
                    yield events.choice(None, chunk.finish_reason)
    except ModelcycleError as exc:
        yield error_event(exc)
        return
    if include_usage:
        yield events.usage(usage)
    yield DONE


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
