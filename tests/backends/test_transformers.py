"""Kind ``transformers`` through the gateway, on a tiny Llama the tests build themselves.

The model (2 layers, hidden 64, random weights, seeded) and its word-level
tokenizer with a chat template are saved once per module; a LoRA adapter with
non-zero weights is created on it with peft. Nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from modelcycle.api import create_app
from modelcycle.backends import GenerationParams
from modelcycle.backends.hf import Models, TransformersBackend
from modelcycle.backends.hf.loading import LoadedModel, ModelKey, load
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.errors import InvalidInput
from modelcycle.services import Services
from modelcycle.testing import admin_of, make_key, make_services, make_settings, register
from modelcycle.testing.tiny_lm import tiny_llama, word_tokenizer
from modelcycle.types import BackendKind, Role

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub call would fail, never download
torch = pytest.importorskip("torch", reason="the [hf] extra is not installed")
transformers = pytest.importorskip("transformers", reason="the [hf] extra is not installed")
peft = pytest.importorskip("peft", reason="the [hf] extra is not installed")

WORDS = [
    *("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "paris", "is", "capital"),
    *("of", "france", "rome", "italy", "how", "many", "days", "are", "in", "a", "week", "seven"),
    *("hello", "world", "there", "cat", "sat", "on", "mat", "red", "blue", "green"),
]
TEMPLATE = (
    "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)
PROMPTS = [
    "the quick brown fox",
    "paris",
    "how many days are in a week",
    "hello world the cat sat on the mat red blue",
]


@dataclass(frozen=True)
class Tiny:
    model: Path
    adapter: Path
    gpt2: Path
    """The same tokenizer on GPT-2, whose learned absolute positions make padding visible."""


def build_tiny(root: Path) -> Tiny:
    """A 2-layer Llama with a word-level tokenizer and chat template, and a LoRA on it."""
    tokenizer = word_tokenizer([":", "system", "user", "assistant", *WORDS], chat_template=TEMPLATE)
    vocab = tokenizer.get_vocab()
    model = tiny_llama(len(vocab), seed=7)
    model.save_pretrained(root / "tiny")
    tokenizer.save_pretrained(root / "tiny")
    lora = peft.LoraConfig(
        r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    with warnings.catch_warnings():
        # peft reads a transformers attribute that transformers 5 deprecates.
        warnings.simplefilter("ignore", FutureWarning)
        adapted = peft.get_peft_model(model, lora)
    adapted.save_pretrained(root / "adapter")
    gpt2 = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=len(vocab),
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_positions=128,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
    )
    with torch.no_grad():  # loud positions: a padding bug then changes every answer
        gpt2.transformer.wpe.weight.mul_(20)
        gpt2.transformer.wte.weight[2].zero_()  # end of sequence scores 0: answers run long
    gpt2.save_pretrained(root / "gpt2")
    tokenizer.save_pretrained(root / "gpt2")
    return Tiny(root / "tiny", root / "adapter", root / "gpt2")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    return build_tiny(tmp_path_factory.mktemp("hf"))


class Gateway:
    """Services with transformers versions, deployments and an SDK client."""

    def __init__(self, services: Services):
        self.services = services
        self.admin = admin_of(services)
        http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(services)))
        self.client = openai.AsyncOpenAI(
            base_url="http://modelcycle.test/v1",
            api_key=make_key(services, Role.APP).key,
            http_client=http,
            max_retries=0,
        )

    def deploy(self, name: str, source: Path | str, **params: Any) -> str:
        """A deployment ``name`` serving ``source`` with kind transformers."""
        params = {"temperature": 0, "batch_wait_ms": 0, **params}
        created = register(
            self.services,
            self.admin.principal,
            name,
            source=str(source),
            backend=BackendKind.TRANSFORMERS,
            params=params,
        )
        route = Route(target=f"{name}@{created.version}", weight=100)
        self.services.deployments.create(
            self.admin.principal, DeploymentSpec(name=name, routes=[route])
        )
        return name

    def solo_and_batched(self, source: Path, size: int) -> tuple[str, str]:
        """Two versions of the same weights: one never waits, one waits for ``size`` requests.

        They share one model (and so one batcher); a batch takes the wait and size of
        the request that opens it, so the second closes as soon as ``size`` arrived.
        """
        batched = {"batch_wait_ms": 5000, "max_batch_size": size}
        return self.deploy("solo", source), self.deploy("batched", source, **batched)

    def batch_sizes(self) -> list[int]:
        """Sizes of the batches every loaded model has served, in order."""
        models = self.services.builtin_backends.transformers
        return [size for batcher in models.batchers() for size in batcher.batch_sizes]

    async def complete(self, model: str, prompt: str, **kwargs: Any) -> Any:
        return await self.client.completions.create(model=model, prompt=prompt, **kwargs)


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    services = make_services(make_settings(tmp_path / "home"))
    built = Gateway(services)
    yield built
    await built.client.close()
    await services.gateway.aclose()
    services.close()


def answer(completion: Any) -> tuple[str, str, int, int]:
    """Text, finish reason and token counts of a ``/v1/completions`` answer."""
    choice = completion.choices[0]
    usage = completion.usage
    return choice.text, choice.finish_reason, usage.prompt_tokens, usage.completion_tokens


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
async def test_greedy_answers_are_the_same_alone_and_in_a_batch_of_4(
    gw: Gateway, tiny: Tiny, architecture: str
) -> None:
    solo, batched = gw.solo_and_batched(tiny.model if architecture == "llama" else tiny.gpt2, 4)
    alone = [answer(await gw.complete(solo, p, max_tokens=16)) for p in PROMPTS]
    together = await asyncio.gather(*(gw.complete(batched, p, max_tokens=16) for p in PROMPTS))

    assert [answer(c) for c in together] == alone
    assert gw.batch_sizes() == [1, 1, 1, 1, 4]  # the four really shared one padded batch
    assert len({text for text, *_ in alone}) == 4  # different prompts, different answers
    for (text, reason, prompt_tokens, completion_tokens), prompt in zip(
        alone, PROMPTS, strict=True
    ):
        assert text.strip()
        assert prompt_tokens == len(prompt.split())  # exact, padding not counted
        assert (reason, completion_tokens) == ("length", 16)


async def test_chat_whole_and_streamed_agree_and_use_the_chat_template(
    gw: Gateway, tiny: Tiny
) -> None:
    model = gw.deploy("tiny", tiny.model)
    messages: Any = [{"role": "user", "content": "how many days are in a week"}]
    # A stop whose first word the answer has but whose whole never comes: the stream
    # holds "world" back each time, then must still deliver it.
    ask = {"model": model, "messages": messages, "max_tokens": 12, "stop": ["world zebra"]}
    whole = await gw.client.chat.completions.create(**ask)
    again = await gw.client.chat.completions.create(**ask)
    stream = await gw.client.chat.completions.create(
        **ask, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    text = whole.choices[0].message.content
    assert text
    assert text.endswith("world")
    assert text == again.choices[0].message.content  # temperature 0: deterministic
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert whole.usage is not None
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    # "<s> user : how many days are in a week assistant :" is 12 tokens.
    assert whole.usage.prompt_tokens == 12


async def test_a_lora_adapter_changes_the_answers(gw: Gateway, tiny: Tiny) -> None:
    base = gw.deploy("base", tiny.model)
    tuned = gw.deploy("tuned", tiny.model, adapter=str(tiny.adapter))

    base_texts = [answer(await gw.complete(base, p, max_tokens=12))[0] for p in PROMPTS]
    tuned_texts = [answer(await gw.complete(tuned, p, max_tokens=12))[0] for p in PROMPTS]

    assert base_texts != tuned_texts
    assert tuned_texts == [answer(await gw.complete(tuned, p, max_tokens=12))[0] for p in PROMPTS]


async def test_max_tokens_and_stop_are_honoured_per_row_in_a_mixed_batch(
    gw: Gateway, tiny: Tiny
) -> None:
    solo, model = gw.solo_and_batched(tiny.model, 4)
    full = answer(await gw.complete(solo, PROMPTS[0], max_tokens=12))[0]
    # Two words: the stream must hold the first back until it knows the second.
    stop_phrase = " ".join(full.split()[3:5])
    expected_cut = full[: full.index(stop_phrase)]
    long_alone = answer(await gw.complete(solo, PROMPTS[2], max_tokens=12))

    short, stopped, long_, streamed = await asyncio.gather(
        gw.complete(model, PROMPTS[1], max_tokens=3),
        gw.complete(model, PROMPTS[0], max_tokens=12, stop=[stop_phrase]),
        gw.complete(model, PROMPTS[2], max_tokens=12),
        gw.complete(model, PROMPTS[0], max_tokens=12, stop=[stop_phrase], stream=True),
    )
    pieces = [chunk async for chunk in streamed]

    assert gw.batch_sizes() == [1, 1, 4]
    assert answer(short)[1:] == ("length", 1, 3)
    assert answer(stopped)[0] == expected_cut
    assert answer(stopped)[1] == "stop"
    # The rows that finished first left the batch; the last one's answer did not change.
    assert answer(long_) == long_alone
    assert long_alone[1:] == ("length", 7, 12)
    assert "".join(p.choices[0].text for p in pieces) == expected_cut  # never leaked, then cut
    assert pieces[-1].choices[0].finish_reason == "stop"


async def test_versions_on_the_same_weights_share_one_model_and_its_batches(
    gw: Gateway, tiny: Tiny
) -> None:
    pair = {"batch_wait_ms": 5000, "max_batch_size": 2}
    short = gw.deploy("short", tiny.model, max_tokens=5, **pair)
    long_ = gw.deploy("long", tiny.model, max_tokens=9, **pair)
    half = gw.deploy("half", tiny.model, dtype="bfloat16", max_tokens=9)

    a, b = await asyncio.gather(gw.complete(short, PROMPTS[0]), gw.complete(long_, PROMPTS[0]))
    c = await gw.complete(half, PROMPTS[0])

    assert answer(a)[3] == 5  # each version's own default max_tokens
    assert answer(b)[3] == 9
    assert answer(b)[0].startswith(answer(a)[0])
    assert answer(c)[1:] == ("length", 4, 9)
    models = gw.services.builtin_backends.transformers.batchers()
    assert sorted(batcher.key.dtype for batcher in models) == ["bfloat16", "float32"]
    assert gw.batch_sizes() == [2, 1]  # both float32 versions in one batch


async def test_a_seeded_sample_is_the_same_alone_and_in_a_batch(gw: Gateway, tiny: Tiny) -> None:
    solo, model = gw.solo_and_batched(tiny.model, 3)
    sample = {"max_tokens": 10, "temperature": 1.5, "seed": 1234}
    alone = answer(await gw.complete(solo, PROMPTS[3], **sample))
    batch = await asyncio.gather(
        gw.complete(model, PROMPTS[3], **sample),
        gw.complete(model, PROMPTS[3], max_tokens=10, temperature=1.5, seed=99),
        gw.complete(model, PROMPTS[0], max_tokens=10),
    )

    assert gw.batch_sizes() == [1, 3]
    assert answer(batch[0]) == alone
    assert answer(batch[1])[0] != alone[0]  # another seed, another sample


async def test_a_prompt_longer_than_the_context_is_a_400(gw: Gateway, tiny: Tiny) -> None:
    model = gw.deploy("tiny", tiny.model, context_length=8)
    with pytest.raises(openai.BadRequestError) as caught:
        await gw.complete(model, "the quick brown fox jumps over the lazy dog")
    assert caught.value.code == "context_length_exceeded"
    assert "9 tokens" in str(caught.value)


@pytest.mark.parametrize("where", ["path", "hub id"])
async def test_a_bad_source_is_a_502_naming_it(gw: Gateway, tmp_path: Path, where: str) -> None:
    # A hub id is refused like any missing path: nothing is ever downloaded.
    missing = str(tmp_path / "no-such-checkpoint") if where == "path" else "openai-community/gpt2"
    model = gw.deploy("gone", missing)
    with pytest.raises(openai.APIStatusError) as caught:
        await gw.complete(model, "hello")
    assert caught.value.status_code == 502
    assert f"cannot load transformers model {missing}: no such directory" in str(caught.value)


async def test_a_bad_adapter_path_is_a_502_naming_it(
    gw: Gateway, tiny: Tiny, tmp_path: Path
) -> None:
    model = gw.deploy("tuned", tiny.model, adapter=str(tmp_path))
    with pytest.raises(openai.APIStatusError) as caught:
        await gw.complete(model, "hello")
    assert caught.value.status_code == 502
    assert f"cannot load LoRA adapter {tmp_path}: no adapter_config.json" in str(caught.value)


async def test_without_the_hf_extra_the_error_gives_the_pip_command(
    gw: Gateway, tiny: Tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    model = gw.deploy("tiny", tiny.model)
    with pytest.raises(openai.APIStatusError) as caught:
        await gw.complete(model, "hello")
    assert caught.value.status_code == 502
    assert "pip install 'modelcycle[hf]'" in str(caught.value)


async def test_bad_serving_params_are_refused_at_registration(gw: Gateway, tiny: Tiny) -> None:
    with pytest.raises(InvalidInput) as caught:
        gw.deploy("tiny", tiny.model, dtype="int3", max_batch_size=0, batch_wait_ms="soon")
    assert "params.dtype must be one of float32, bfloat16, float16, not 'int3'" in str(caught.value)
    assert "params.max_batch_size must be an integer >= 1, not 0" in str(caught.value)
    assert "params.batch_wait_ms must be a number >= 0, not 'soon'" in str(caught.value)


class Watched:
    """A loaded model whose forward passes are counted, with the thread each ran on."""

    def __init__(self, model: Any):
        self.model = model
        self.config = model.config
        self.threads: list[threading.Thread] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.threads.append(threading.current_thread())
        return self.model(**kwargs)


async def test_inference_runs_off_the_loop_and_stops_when_the_client_leaves(tiny: Tiny) -> None:
    watched: list[Watched] = []

    def loader(key: ModelKey, cache_dir: Path | None) -> LoadedModel:
        loaded = load(key, cache_dir)
        watched.append(Watched(loaded.model))
        return replace(loaded, model=watched[-1])

    models = Models(loader=loader)
    backend = TransformersBackend(models, str(tiny.model), {"temperature": 0})
    stream = backend.stream_complete(PROMPTS[0], GenerationParams(max_tokens=100))
    first = await anext(stream)
    await stream.aclose()  # the client went away after the first piece
    after = await backend.complete(PROMPTS[1], GenerationParams(max_tokens=3))
    models.close()

    assert first.text
    assert after.usage.completion_tokens == 3
    forwards = watched[0].threads
    assert threading.main_thread() not in forwards  # never on the event loop's thread
    # The abandoned row left after a few steps instead of running its 100 tokens.
    assert len(forwards) < 30
