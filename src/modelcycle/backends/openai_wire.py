"""What the ``openai`` backend sends to and reads from an OpenAI-compatible upstream.

Request bodies (with the fields a client may pass through), answers, server-sent
events, and the mapping of upstream failures onto modelcycle's errors:

======================================  ============================================
upstream answer                         what the caller of ``/v1`` gets
======================================  ============================================
400, 413, 415, 422                      the same status and the upstream's message
                                        (``UpstreamRejected``: no retry, no fallback)
401, 403, 404, 405                      502, the version is misconfigured (a wrong
                                        credential, model name or URL): no retry,
                                        the fallbacks are tried
408, 504, no answer in time             504 ``UpstreamTimeout`` (retried)
429, other 4xx, 5xx, connection errors  502 ``UpstreamError`` (retried)
a stream that ends before it finished   an error event, never ``[DONE]``
======================================  ============================================
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson

from modelcycle.backends.base import (
    Chunk,
    Completion,
    Message,
    ResponseFormat,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from modelcycle.backends.capabilities import Embeddings
from modelcycle.errors import ModelcycleError, UpstreamError, UpstreamRejected, UpstreamTimeout

OPENAI_CHAT_FIELDS = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "metadata",
        "modalities",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "service_tier",
        "store",
        "tool_choice",
        "tools",
        "user",
        "verbosity",
        "web_search_options",
    }
)
"""Fields of OpenAI's chat request a client may pass through (besides those the
gateway interprets itself: model, messages, sampling parameters, streaming,
logprobs, and ``n``: the gateway makes one backend call per choice)."""

OPENAI_COMPLETION_FIELDS = frozenset(
    {"best_of", "frequency_penalty", "logit_bias", "presence_penalty", "suffix", "user"}
)
"""Fields of OpenAI's legacy completions request a client may pass through."""

_CLIENT_ERRORS = frozenset({400, 413, 415, 422})
_CONFIG_ERRORS = frozenset({401, 403, 404, 405})
_TIMEOUTS = frozenset({408, 504})
MAX_MESSAGE = 1000
DONE = b"[DONE]"


def chat_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Messages flattened to role and text, as OpenAI reads them."""
    return [{"role": m.role, "content": m.content} for m in messages]


def error_message(payload: bytes) -> tuple[str, str | None, str | None]:
    """The message, param and code of an upstream's error body, whatever its dialect.

    OpenAI, vLLM and llama.cpp send ``{"error": {"message": ...}}``; Ollama and TGI
    ``{"error": "..."}``; FastAPI servers ``{"detail": ...}``; anything else is shown
    as text.
    """
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        text = payload.decode("utf-8", "replace").strip()
        return text[:MAX_MESSAGE] or "(empty body)", None, None
    error = body.get("error", body.get("detail", body)) if isinstance(body, dict) else body
    if isinstance(error, dict):
        message = error.get("message") or error.get("msg") or orjson.dumps(error).decode()
        param, code = error.get("param"), error.get("code")
        return (
            str(message)[:MAX_MESSAGE],
            param if isinstance(param, str) else None,
            code if isinstance(code, str) else None,
        )
    text = error if isinstance(error, str) else orjson.dumps(error).decode()
    return text[:MAX_MESSAGE], None, None


def status_error(status: int, payload: bytes, scrub: str | None) -> ModelcycleError:
    """The error for an upstream's non-2xx answer (see the module docstring)."""
    message, param, code = error_message(payload)
    if scrub:
        message = message.replace(scrub, "***")
    if status in _CLIENT_ERRORS:
        return UpstreamRejected(message, status_code=status, param=param, code=code)
    if status in _CONFIG_ERRORS:
        what = {
            401: "refused the version's credential",
            403: "refused the version's credential",
            404: "has no such model or path",
            405: "does not serve this path",
        }[status]
        return UpstreamError(
            f"the upstream {what} ({status}): {message}; check the version's source and "
            "params (model, api_key_env or api_key_secret)",
            code="target_unavailable",
        )
    if status in _TIMEOUTS:
        return UpstreamTimeout(f"the upstream timed out ({status}): {message}", code="timeout")
    return UpstreamError(f"the upstream answered {status}: {message}", code=f"upstream_{status}")


def _first_choice(body: Any) -> dict[str, Any]:
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise UpstreamError("the upstream answered without choices")
    choice: dict[str, Any] = choices[0]
    return choice


def _usage(body: Mapping[str, Any]) -> Usage | None:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def _tool_calls(value: Any) -> tuple[Mapping[str, Any], ...] | None:
    if isinstance(value, list) and value:
        return tuple(call for call in value if isinstance(call, dict)) or None
    return None


def parse_embeddings(payload: bytes, count: int) -> Embeddings:
    """The vectors of an ``/embeddings`` answer, in input order."""
    try:
        body = orjson.loads(payload)
        items = sorted(body["data"], key=lambda item: int(item.get("index", 0)))
        vectors = [[float(x) for x in item["embedding"]] for item in items]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise UpstreamError("the upstream's embeddings answer is not OpenAI's shape") from None
    if len(vectors) != count:
        raise UpstreamError(f"the upstream returned {len(vectors)} vectors for {count} inputs")
    usage = body.get("usage") if isinstance(body, dict) else None
    tokens = int(usage.get("prompt_tokens") or 0) if isinstance(usage, dict) else 0
    return Embeddings(vectors=vectors, prompt_tokens=tokens)


def response_format_json(value: ResponseFormat) -> dict[str, Any]:
    """OpenAI's ``response_format`` object for a parsed one (when the client's is not at hand)."""
    if value.type != "json_schema" or value.schema is None:
        return {"type": value.type}
    schema = {"name": value.name or "answer", "schema": orjson.loads(value.schema)}
    return {"type": "json_schema", "json_schema": schema}


def _bytes(item: Mapping[str, Any], token: str) -> tuple[int, ...]:
    raw = item.get("bytes")
    if isinstance(raw, list):
        return tuple(int(b) for b in raw)
    return tuple(token.encode("utf-8"))


def _chat_logprobs(value: Any) -> tuple[TokenLogprob, ...] | None:
    """``choice.logprobs.content`` of a chat answer or chunk."""
    content = value.get("content") if isinstance(value, dict) else None
    if not isinstance(content, list):
        return None
    out = []
    for item in content:
        token = str(item.get("token", ""))
        tops = item.get("top_logprobs")
        top = (
            tuple(
                TopLogprob(str(t.get("token", "")), float(t["logprob"]), _bytes(t, str(t["token"])))
                for t in tops
            )
            if isinstance(tops, list)
            else None
        )
        out.append(TokenLogprob(token, item.get("logprob"), _bytes(item, token), top))
    return tuple(out)


def _text_logprobs(value: Any) -> tuple[TokenLogprob, ...] | None:
    """``choice.logprobs`` of a legacy completion: parallel lists of tokens and logprobs."""
    if not isinstance(value, dict) or not isinstance(value.get("tokens"), list):
        return None
    tokens, logprobs = value["tokens"], value.get("token_logprobs") or []
    tops = value.get("top_logprobs") or []
    out = []
    for index, token in enumerate(tokens):
        alternatives = tops[index] if index < len(tops) else None
        top = (
            tuple(
                TopLogprob(t, float(lp), tuple(t.encode("utf-8"))) for t, lp in alternatives.items()
            )
            if isinstance(alternatives, dict)
            else None
        )
        logprob = logprobs[index] if index < len(logprobs) else None
        out.append(TokenLogprob(str(token), logprob, tuple(str(token).encode("utf-8")), top))
    return tuple(out)


def _split_echo(
    text: str, logprobs: Any, prompt: str
) -> tuple[str, tuple[TokenLogprob, ...] | None, tuple[TokenLogprob, ...] | None]:
    """An echoed answer split into the answer and the prompt's scored tokens."""
    answer = text[len(prompt) :] if text.startswith(prompt) else text
    scored = _text_logprobs(logprobs)
    offsets = logprobs.get("text_offset") if isinstance(logprobs, dict) else None
    if scored is None or not isinstance(offsets, list) or len(offsets) != len(scored):
        return answer, scored, None
    cut = sum(1 for offset in offsets if offset < len(prompt))
    return answer, scored[cut:], scored[:cut]


def parse_answer(payload: bytes, chat: bool, *, echoed: str | None = None) -> Completion:
    """A whole answer (``chat.completion`` or ``text_completion``) as a ``Completion``.

    ``echoed``: the prompt, when the upstream was asked to echo it (it is split off
    the text, and its scored tokens become ``prompt_logprobs``).
    """
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise UpstreamError("the upstream's answer is not JSON") from None
    choice = _first_choice(body)
    prompt_logprobs = None
    if chat:
        message = choice.get("message") or {}
        text, tool_calls = message.get("content") or "", _tool_calls(message.get("tool_calls"))
        logprobs = _chat_logprobs(choice.get("logprobs"))
    elif echoed is not None:
        tool_calls = None
        text, logprobs, prompt_logprobs = _split_echo(
            str(choice.get("text") or ""), choice.get("logprobs"), echoed
        )
    else:
        text, tool_calls = choice.get("text") or "", None
        logprobs = _text_logprobs(choice.get("logprobs"))
    return Completion(
        text=str(text),
        finish_reason=str(choice.get("finish_reason") or "stop"),
        usage=_usage(body) or Usage(0, 0),
        tool_calls=tool_calls,
        logprobs=logprobs,
        prompt_logprobs=prompt_logprobs,
    )


async def sse_data(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ``data`` of each server-sent event read from ``pieces`` of the body.

    Lines are split here rather than with the reader's ``readline``, which fails on
    lines longer than 64 KiB (a large tool call or logprobs chunk).
    """
    pending = b""
    data: list[bytes] = []
    async for piece in pieces:
        pending += piece
        if b"\n" not in piece:
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            # Other fields (event:, id:, retry:) and comments (": ping") carry no output.
    if pending.startswith(b"data:"):
        data.append(pending[6:] if pending[5:6] == b" " else pending[5:])
    if data:
        yield b"\n".join(data)


class StreamReader:
    """Turns the events of an upstream stream into ``Chunk`` objects.

    The chunk with ``finish_reason`` is held back until ``[DONE]`` (or the end of
    the body), so that the usage OpenAI sends after it rides on the last chunk.
    A body that ends without a ``finish_reason`` is a broken stream.
    """

    def __init__(self, chat: bool):
        self.chat = chat
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.pieces = 0
        self.done = False

    def feed(self, data: bytes) -> list[Chunk]:
        """The chunks of one event's data (none for ``[DONE]`` or usage-only events)."""
        if data.strip() == DONE:
            self.done = True
            return []
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError("the upstream sent a stream event that is not JSON") from None
        if not isinstance(event, dict):
            raise UpstreamError("the upstream sent a stream event that is not an object")
        if "error" in event:
            message, _, code = error_message(data)
            raise UpstreamError(f"the upstream stream failed: {message}", code=code)
        self.usage = _usage(event) or self.usage
        out = []
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if self.chat:
                delta = choice.get("delta") or {}
                text, calls = delta.get("content") or "", _tool_calls(delta.get("tool_calls"))
                logprobs = _chat_logprobs(choice.get("logprobs"))
            else:
                text, calls = choice.get("text") or "", None
                logprobs = _text_logprobs(choice.get("logprobs"))
            if text or calls or logprobs:
                self.pieces += 1
                out.append(Chunk(str(text), tool_calls=calls, logprobs=logprobs))
            self.finish = choice.get("finish_reason") or self.finish
        return out

    def last(self) -> Chunk:
        """The final chunk; ``UpstreamError`` when the stream never finished."""
        if self.finish is None and self.done:
            self.finish = "stop"  # [DONE] without a finish_reason: a terse server, not a cut
        if self.finish is None:
            raise UpstreamError(
                "the upstream stream ended before it finished (no finish_reason)",
                code="stream_cut",
            )
        return Chunk("", self.finish, self.usage or Usage(0, self.pieces))
