"""The shipped ``MockBackend``: deterministic answers, streams, latency and failures."""

from __future__ import annotations

import time

import pytest

from modelcycle.backends import Chunk, GenerationParams, Message
from modelcycle.errors import InvalidInput, UpstreamError
from modelcycle.testing import MockBackend

ASK = [Message("system", "be brief"), Message("user", "hello big world")]


async def test_echo_answers_with_the_last_user_message() -> None:
    backend = MockBackend.from_source("mock://echo", {})
    answer = await backend.chat(ASK, GenerationParams())
    assert (answer.text, answer.finish_reason) == ("hello big world", "stop")
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 3)
    assert (await backend.complete("raw prompt", GenerationParams())).text == "raw prompt"


async def test_scripted_replies_cycle_from_the_source_or_the_params() -> None:
    from_source = MockBackend.from_source("mock://script?reply=Hi&reply=Bye+now", {})
    from_params = MockBackend.from_source("mock://script", {"replies": ["one", "two"]})
    assert [(await from_source.chat(ASK, GenerationParams())).text for _ in range(3)] == [
        "Hi",
        "Bye now",
        "Hi",
    ]
    assert (await from_params.chat(ASK, GenerationParams())).text == "one"


async def test_max_tokens_and_stop_cut_the_answer() -> None:
    backend = MockBackend.from_source("mock://script?reply=one+two+three.+four", {})
    short = await backend.chat(ASK, GenerationParams(max_tokens=2))
    stopped = await backend.chat(ASK, GenerationParams(stop=(".",)))
    assert (short.text, short.finish_reason) == ("one two", "length")
    assert (stopped.text, stopped.finish_reason) == ("one two three", "stop")


async def test_streams_word_by_word_and_end_with_finish_and_usage() -> None:
    backend = MockBackend.from_source("mock://echo", {})
    chunks = [chunk async for chunk in backend.stream_chat(ASK, GenerationParams())]
    assert [c.text for c in chunks] == ["hello", " big", " world", ""]
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


async def test_failures_are_scripted() -> None:
    flaky = MockBackend.from_source("mock://echo", {"fail_first": 2, "error": "boom"})
    for _ in range(2):
        with pytest.raises(UpstreamError, match="boom"):
            await flaky.chat(ASK, GenerationParams())
    assert (await flaky.chat(ASK, GenerationParams())).text == "hello big world"
    with pytest.raises(UpstreamError):
        await MockBackend.from_source("mock://fail", {}).chat(ASK, GenerationParams())

    cut = MockBackend.from_source("mock://echo", {"fail_mid_stream": 1})
    seen: list[Chunk] = []

    async def read_all() -> None:
        async for chunk in cut.stream_complete("a b c", GenerationParams()):
            seen.append(chunk)

    with pytest.raises(UpstreamError, match="after 1 chunks"):
        await read_all()
    assert [c.text for c in seen] == ["a"]


async def test_latency_is_applied() -> None:
    backend = MockBackend.from_source("mock://echo?latency_ms=50", {})
    started = time.perf_counter()
    await backend.complete("x", GenerationParams())
    assert time.perf_counter() - started >= 0.05


async def test_calls_are_recorded_for_assertions() -> None:
    backend = MockBackend.from_source("mock://echo", {})
    await backend.chat(ASK, GenerationParams(temperature=0.5))
    assert [(c.kind, c.prompt, c.params.temperature) for c in backend.calls] == [
        ("chat", "hello big world", 0.5)
    ]


def test_a_source_that_is_not_mock_is_refused() -> None:
    with pytest.raises(InvalidInput, match="mock://"):
        MockBackend.from_source("http://example", {})


async def test_a_chat_without_a_user_message_is_refused() -> None:
    with pytest.raises(InvalidInput, match="user message"):
        await MockBackend().chat([Message("system", "x")], GenerationParams())
