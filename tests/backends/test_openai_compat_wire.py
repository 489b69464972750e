"""What the ``openai`` backend reads from upstreams: error dialects, SSE framing, logprobs.

Each upstream family words things its own way; these are the shapes a user of
vLLM, Ollama, TGI, llama.cpp's server or OpenAI gets back through the gateway.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest

from backends.openai_upstream import MockUpstream
from modelcycle.backends import GenerationParams, Message
from modelcycle.backends.base import CallScope, ResponseFormat, call_scope
from modelcycle.backends.capabilities import FEATURES, Capable, Embedder
from modelcycle.backends.openai_compat import OpenAICompatBackend
from modelcycle.backends.openai_wire import (
    StreamReader,
    error_message,
    parse_answer,
    sse_data,
    status_error,
)
from modelcycle.errors import InvalidInput, UpstreamError, UpstreamRejected, UpstreamTimeout


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"error": {"message": "bad tools", "param": "tools", "code": "x"}}', "bad tools"),
        (b'{"error": "model \\"llama3\\" not found, try pulling it first"}', "not found"),
        (b'{"error": "Input validation error", "error_type": "validation"}', "Input validation"),
        (b'{"detail": [{"msg": "field required"}]}', "field required"),
        (b"upstream connect error or disconnect/reset", "disconnect/reset"),
        (b"", "(empty body)"),
    ],
)
def test_every_error_dialect_gives_a_readable_message(payload: bytes, message: str) -> None:
    assert message in error_message(payload)[0]


def test_statuses_map_to_what_the_caller_should_do() -> None:
    rejected = status_error(422, b'{"error": {"message": "no", "param": "n"}}', None)
    config = status_error(404, b'{"error": "model not found"}', None)
    timeout = status_error(504, b"gateway timeout", None)
    busy = status_error(429, b'{"error": {"message": "slow down"}}', None)

    assert isinstance(rejected, UpstreamRejected)
    assert (rejected.status_code, rejected.param) == (422, "n")
    assert isinstance(config, UpstreamError)
    assert config.code == "target_unavailable"  # not retried; fallbacks tried
    assert "has no such model or path (404)" in config.message
    assert isinstance(timeout, UpstreamTimeout)
    assert timeout.status_code == 504
    assert busy.status_code == 502
    assert busy.code == "upstream_429"  # retried


async def pieces(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_sse_framing_survives_any_split_crlf_comments_and_long_lines() -> None:
    long = "x" * 200_000
    body = (
        b': ping\r\n\r\nevent: message\r\ndata: {"a": 1}\r\n\r\n'
        + b'data: {"b": "'
        + long.encode()
        + b'"}\n\ndata:[DONE]'
    )
    split = [body[i : i + 7] for i in range(0, len(body), 7)]

    events = [e async for e in sse_data(pieces(*split))]

    assert events == [b'{"a": 1}', b'{"b": "' + long.encode() + b'"}', b"[DONE]"]


def test_a_stream_reader_holds_the_finish_until_usage_arrives() -> None:
    reader = StreamReader(chat=True)
    delta = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}

    out = [c for e in (delta, finish, usage) for c in reader.feed(json.dumps(e).encode())]
    reader.feed(b"[DONE]")
    last = reader.last()

    assert [c.text for c in out] == ["Hi"]
    assert last.finish_reason == "length"
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (3, 1)


def test_a_stream_without_finish_or_done_is_broken_but_done_alone_is_terse() -> None:
    cut = StreamReader(chat=False)
    cut.feed(b'{"choices": [{"index": 0, "text": "Hel", "finish_reason": null}]}')
    terse = StreamReader(chat=False)
    terse.feed(b"[DONE]")
    failing = StreamReader(chat=True)

    with pytest.raises(UpstreamError, match="ended before it finished"):
        cut.last()
    assert terse.last().finish_reason == "stop"
    with pytest.raises(UpstreamError, match="stream failed: overloaded"):
        failing.feed(b'{"error": {"message": "overloaded", "type": "server_error"}}')


def test_logprobs_of_chat_answers_and_echoed_completions() -> None:
    chat = {
        "choices": [
            {
                "message": {"content": "Hi"},
                "finish_reason": "stop",
                "logprobs": {
                    "content": [
                        {
                            "token": "Hi",
                            "logprob": -0.1,
                            "bytes": [72, 105],
                            "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}],
                        }
                    ]
                },
            }
        ]
    }
    echoed = {
        "choices": [
            {
                "text": "The sky is blue",
                "finish_reason": "length",
                "logprobs": {
                    "tokens": ["The", " sky", " is", " blue"],
                    "token_logprobs": [None, -2.0, -0.5, -1.5],
                    "top_logprobs": [None, {" sky": -2.0}, {" is": -0.5}, {" blue": -1.5}],
                    "text_offset": [0, 3, 7, 10],
                },
            }
        ]
    }

    answer = parse_answer(json.dumps(chat).encode(), chat=True)
    scored = parse_answer(json.dumps(echoed).encode(), chat=False, echoed="The sky is")

    assert answer.logprobs is not None
    assert (answer.logprobs[0].token, answer.logprobs[0].logprob) == ("Hi", -0.1)
    assert answer.logprobs[0].bytes == (72, 105)
    assert scored.text == " blue"
    assert scored.prompt_logprobs is not None
    assert [t.logprob for t in scored.prompt_logprobs] == [None, -2.0, -0.5]
    assert scored.logprobs is not None
    assert [(t.token, t.logprob) for t in scored.logprobs] == [(" blue", -1.5)]


@pytest.fixture
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as server:
        yield server


async def test_the_backend_embeds_and_says_what_it_supports(upstream: MockUpstream) -> None:
    backend = OpenAICompatBackend(upstream.url, {"model": "embedder"})
    try:
        vectors = await backend.embed(["a", "bcd", [1, 2]], dimensions=2)
    finally:
        await backend.close()

    assert isinstance(backend, Capable)
    assert isinstance(backend, Embedder)
    assert all(backend.supports(feature) for feature in FEATURES)
    assert vectors.vectors == [[1.0, 0.5], [3.0, 0.5], [6.0, 0.5]]
    assert vectors.prompt_tokens == 3
    assert upstream.requests[0].path == "/v1/embeddings"
    assert upstream.requests[0].body == {
        "model": "embedder",
        "input": ["a", "bcd", [1, 2]],
        "encoding_format": "float",
        "dimensions": 2,
    }


async def test_logprobs_json_mode_and_version_defaults_reach_the_upstream(
    upstream: MockUpstream,
) -> None:
    backend = OpenAICompatBackend(
        upstream.url,
        {"temperature": 0.1, "max_tokens": 9, "max_tokens_field": "max_completion_tokens"},
    )
    schema = ResponseFormat("json_schema", '{"type":"object"}', "reply")
    try:
        await backend.chat(
            [Message("user", "hi")], GenerationParams(logprobs=2, response_format=schema)
        )
        await backend.complete("x", GenerationParams(logprobs=1, echo=True, temperature=0.5))
    finally:
        await backend.close()

    chat, completion = (request.body for request in upstream.requests)
    assert "model" not in chat  # none configured: a single-model server picks its own
    assert (chat["logprobs"], chat["top_logprobs"]) == (True, 2)
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": {"type": "object"}},
    }
    assert (chat["temperature"], chat["max_completion_tokens"]) == (0.1, 9)
    assert (completion["logprobs"], completion["echo"], completion["temperature"]) == (1, True, 0.5)


async def test_a_secret_outside_the_gateway_is_a_clear_error(upstream: MockUpstream) -> None:
    backend = OpenAICompatBackend(upstream.url, {"model": "m", "api_key_secret": "prod"})
    token = call_scope.set(CallScope(1, "default"))
    try:
        with pytest.raises(UpstreamError, match="can only be read for a request through"):
            await backend.chat([Message("user", "hi")], GenerationParams())
    finally:
        call_scope.reset(token)
        await backend.close()
    assert upstream.requests == []


def test_a_malformed_version_cannot_be_built() -> None:
    with pytest.raises(InvalidInput, match=r"params\.timeout_s"):
        OpenAICompatBackend("http://127.0.0.1:1/v1", {"model": "m", "timeout_s": -1})
    with pytest.raises(InvalidInput, match="base URL"):
        OpenAICompatBackend("127.0.0.1:1", {"model": "m"})
