"""Log-probabilities, echo, several prompts and ``n`` through ``/v1`` (mock backend).

The mock scores each word with a fixed function of the word and makes it the
likeliest token, so shapes and values can be asserted exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
import pytest

from gateway.harness import Env, Finished
from modelcycle.api import create_app
from modelcycle.backends import Completion, GenerationParams, Usage
from modelcycle.backends.mock_features import scored
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.hookspecs import hookimpl
from modelcycle.settings import Settings
from modelcycle.testing import admin_of, make_key, make_services, register
from modelcycle.types import Role


@pytest.fixture
def echo(env: Env) -> str:
    env.deploy("echo", (env.version("bot", "mock://echo"), 100))
    return "echo"


@pytest.fixture
def script(env: Env) -> str:
    env.deploy("script", (env.version("poet", "mock://script?reply=Rome+is+big"), 100))
    return "script"


async def test_completion_logprobs_have_openais_legacy_shape(env: Env, script: str) -> None:
    answer = await env.openai().completions.create(model=script, prompt="Q:", logprobs=2)

    logprobs = answer.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.tokens == ["Rome", " is", " big"]
    expected = [scored(word, 2).logprob for word in ("Rome", " is", " big")]
    assert logprobs.token_logprobs == pytest.approx(expected)
    assert all(lp is not None and lp <= 0 for lp in logprobs.token_logprobs)
    assert logprobs.text_offset == [0, 4, 7]
    assert logprobs.top_logprobs is not None
    assert logprobs.top_logprobs[0] == {"Rome": expected[0], "Rome~1": expected[0] - 1}
    # Greedy: the chosen token is the likeliest one at every position.
    for token_logprob, top in zip(logprobs.token_logprobs, logprobs.top_logprobs, strict=True):
        assert token_logprob == max(top.values())


async def test_logprobs_zero_still_scores_the_chosen_token(env: Env, script: str) -> None:
    answer = await env.openai().completions.create(model=script, prompt="Q:", logprobs=0)
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None
    words = ["Rome", " is", " big"]
    assert logprobs.top_logprobs == [{word: scored(word, 0).logprob} for word in words]


async def test_echo_with_max_tokens_0_scores_the_prompt_only(env: Env, echo: str) -> None:
    answer = await env.openai().completions.create(
        model=echo, prompt="The cat sat", echo=True, max_tokens=0, logprobs=1
    )
    choice = answer.choices[0]
    assert choice.text == "The cat sat"
    assert choice.finish_reason == "length"
    assert choice.logprobs is not None
    assert choice.logprobs.tokens == ["The", " cat", " sat"]
    assert choice.logprobs.token_logprobs[0] is None
    assert choice.logprobs.top_logprobs is not None
    assert choice.logprobs.top_logprobs[0] is None
    assert choice.logprobs.token_logprobs[1:] == pytest.approx(
        [scored(" cat", 1).logprob, scored(" sat", 1).logprob]
    )
    assert choice.logprobs.text_offset == [0, 3, 7]
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 0)


async def test_echo_logprobs_cover_the_prompt_then_the_answer(env: Env, script: str) -> None:
    answer = await env.openai().completions.create(
        model=script, prompt="Say: ", echo=True, max_tokens=1, logprobs=1
    )
    choice = answer.choices[0]
    assert choice.text == "Say: Rome"
    assert choice.logprobs is not None
    # "Say:" and the trailing space are prompt tokens; "Rome" is the answer's.
    assert choice.logprobs.tokens == ["Say:", " ", "Rome"]
    assert choice.logprobs.token_logprobs[0] is None
    assert choice.logprobs.text_offset == [0, 4, 5]
    assert "".join(choice.logprobs.tokens) == choice.text


async def test_the_lm_eval_harness_loglikelihood_request(env: Env, echo: str) -> None:
    """What lm-evaluation-harness's ``local-completions`` sends, batched token ids included."""
    client = env.http()
    tokenized = (await client.post("/tokenize", json={"model": echo, "prompt": "a b c"})).json()
    context = tokenized["tokens"][:2]  # "a b"
    second = (await client.post("/tokenize", json={"model": echo, "prompt": "x y"})).json()
    payload = {
        "model": echo,
        "prompt": [tokenized["tokens"], second["tokens"]],
        "temperature": 0,
        "max_tokens": 1,
        "logprobs": 1,
        "seed": 1234,
        "echo": True,
    }
    response = await client.post("/v1/completions", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    choices = sorted(body["choices"], key=lambda c: c["index"])
    assert [c["index"] for c in choices] == [0, 1]
    assert choices[0]["text"] == "a b c" + "a"  # the echoed prompt, then the answer
    # lm-eval: sum(token_logprobs[ctxlen:-1]) is the continuation's log-likelihood.
    first = choices[0]["logprobs"]
    assert len(first["token_logprobs"]) == 3 + 1
    continuation = first["token_logprobs"][len(context) : -1]
    assert continuation == pytest.approx([scored(" c", 1).logprob])
    tops = first["top_logprobs"][len(context) : -1]
    assert all(lp == max(top.values()) for lp, top in zip(continuation, tops, strict=True))
    assert choices[1]["text"] == "x yx"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


async def test_chat_logprobs_have_the_chat_shape(env: Env, script: str) -> None:
    answer = await env.openai().chat.completions.create(
        model=script,
        messages=[{"role": "user", "content": "hi"}],
        logprobs=True,
        top_logprobs=3,
    )
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    assert [item.token for item in logprobs.content] == ["Rome", " is", " big"]
    first = logprobs.content[0]
    assert first.logprob == pytest.approx(scored("Rome", 3).logprob)
    assert first.bytes == list(b"Rome")
    assert [top.token for top in first.top_logprobs] == ["Rome", "Rome~1", "Rome~2"]
    assert first.top_logprobs[1].logprob == pytest.approx(first.logprob - 1)


async def test_chat_without_logprobs_has_null_logprobs(env: Env, script: str) -> None:
    response = await env.http().post(
        "/v1/chat/completions",
        json={"model": script, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.json()["choices"][0]["logprobs"] is None


async def test_streamed_chat_chunks_carry_their_tokens_logprobs(env: Env, script: str) -> None:
    stream = await env.openai().chat.completions.create(
        model=script,
        messages=[{"role": "user", "content": "hi"}],
        logprobs=True,
        stream=True,
    )
    tokens = []
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                assert choice.logprobs is not None
                assert choice.logprobs.content is not None
                tokens.extend(item.token for item in choice.logprobs.content)
    assert tokens == ["Rome", " is", " big"]


async def test_streamed_completion_offsets_run_on(env: Env, script: str) -> None:
    stream = await env.openai().completions.create(
        model=script, prompt="Q:", logprobs=1, stream=True
    )
    offsets = []
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.logprobs is not None:
                offsets.extend(choice.logprobs.text_offset or [])
    assert offsets == [0, 4, 7]


async def test_n_samples_are_separate_choices(env: Env, script: str) -> None:
    answer = await env.openai().chat.completions.create(
        model=script, messages=[{"role": "user", "content": "one two"}], n=3, seed=7, temperature=0
    )
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert {c.message.content for c in answer.choices} == {"Rome is big"}
    assert answer.usage is not None
    # The prompt is counted once; every answer's tokens are.
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (2, 9)


async def test_n_samples_of_each_prompt_are_numbered_prompt_by_prompt(env: Env, echo: str) -> None:
    answer = await env.openai().completions.create(model=echo, prompt=["a", "b c"], n=2)
    assert [(c.index, c.text) for c in answer.choices] == [
        (0, "a"),
        (1, "a"),
        (2, "b c"),
        (3, "b c"),
    ]
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 6)


async def test_a_seed_gives_each_sample_its_own_seed(env: Env, echo: str) -> None:
    await env.openai().completions.create(model=echo, prompt="a", n=3, seed=41)
    mock = env.services.gateway.backends.get("mock", "mock://echo", {})
    assert sorted(call.params.seed for call in mock.calls) == [41, 42, 43]  # type: ignore[attr-defined]


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
async def test_a_stream_of_n_choices_tags_every_chunk_with_its_index(
    env: Env, script: str, endpoint: str
) -> None:
    client = env.openai()
    if endpoint == "chat":
        stream: Any = await client.chat.completions.create(
            model=script,
            messages=[{"role": "user", "content": "x"}],
            n=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    else:
        stream = await client.completions.create(
            model=script, prompt="x", n=2, stream=True, stream_options={"include_usage": True}
        )
    texts: dict[int, str] = {0: "", 1: ""}
    finishes: dict[int, str] = {}
    roles: list[int] = []
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if endpoint == "chat":
                texts[choice.index] += choice.delta.content or ""
                if choice.delta.role:
                    roles.append(choice.index)
            else:
                texts[choice.index] += choice.text
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts == {0: "Rome is big", 1: "Rome is big"}
    assert finishes == {0: "stop", 1: "stop"}
    if endpoint == "chat":
        assert roles == [0, 1]
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (1, 6)


async def test_one_event_per_request_with_every_choices_tokens(env: Env, echo: str) -> None:
    client = env.openai()
    await client.completions.create(model=echo, prompt=["a b", "c"], n=2)
    stream = await client.completions.create(model=echo, prompt="a b", n=3, stream=True)
    async for _ in stream:
        pass

    whole, streamed = env.finished.events
    assert (whole.status, whole.prompt_tokens, whole.completion_tokens) == ("ok", 3, 6)
    assert (streamed.status, streamed.prompt_tokens, streamed.completion_tokens) == ("ok", 2, 6)
    assert streamed.stream is True
    assert whole.request_id != streamed.request_id


async def test_echo_without_logprobs_streams_the_prompt_first(env: Env, script: str) -> None:
    stream = await env.openai().completions.create(
        model=script, prompt="Q: ", echo=True, stream=True
    )
    texts = [c.choices[0].text async for c in stream if c.choices]
    assert texts[0] == "Q: "
    assert "".join(texts) == "Q: Rome is big"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/completions", {"prompt": "a", "logprobs": 99}, "logprobs"),
        ("/v1/completions", {"prompt": "a", "logprobs": -1}, "logprobs"),
        ("/v1/completions", {"prompt": "a", "n": 0}, "n"),
        ("/v1/completions", {"prompt": "a", "n": 129}, "n"),
        ("/v1/completions", {"prompt": ["a"] * 200, "n": 2}, "n"),
        ("/v1/completions", {"prompt": "a", "best_of": 2}, "best_of"),
        ("/v1/completions", {"prompt": "a", "max_tokens": 0}, "max_tokens"),
        ("/v1/completions", {"prompt": []}, "prompt"),
        ("/v1/completions", {"prompt": [[]]}, "prompt"),
        ("/v1/completions", {"prompt": [1, -2]}, "prompt"),
        ("/v1/completions", {"prompt": [1, "a"]}, "prompt"),
        ("/v1/completions", {"prompt": [1.5]}, "prompt"),
        ("/v1/completions", {"prompt": [[1], ["a"]]}, "prompt"),
        (
            "/v1/completions",
            {"prompt": "a", "echo": True, "logprobs": 1, "stream": True},
            "stream",
        ),
        ("/v1/chat/completions", {"top_logprobs": 2}, "top_logprobs"),
        ("/v1/chat/completions", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ("/v1/chat/completions", {"logprobs": "maybe"}, "logprobs"),
        ("/v1/chat/completions", {"n": 0}, "n"),
    ],
)
async def test_bad_values_are_openai_400s(
    env: Env, echo: str, path: str, body: dict[str, Any], param: str
) -> None:
    full = {"model": echo, **body}
    if path.endswith("chat/completions"):
        full.setdefault("messages", [{"role": "user", "content": "hi"}])
    response = await env.http().post(path, json=full)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


async def test_an_unknown_token_id_is_a_400(env: Env, echo: str) -> None:
    response = await env.http().post(
        "/v1/completions", json={"model": echo, "prompt": [123456], "max_tokens": 1}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"


async def test_an_unknown_deployment_is_404_for_token_prompts_too(env: Env, echo: str) -> None:
    response = await env.http().post(
        "/v1/completions", json={"model": "nope", "prompt": [[1, 2]], "logprobs": 1, "echo": True}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


class PlainText:
    """A third-party backend that only answers with text: no optional feature."""

    async def chat(self, messages: Any, params: GenerationParams) -> Completion:
        return Completion("plain", "stop", Usage(1, 1))

    async def complete(self, prompt: str, params: GenerationParams) -> Completion:
        return Completion("plain", "stop", Usage(1, 1))

    def stream_chat(self, messages: Any, params: GenerationParams) -> Any:
        raise NotImplementedError

    def stream_complete(self, prompt: str, params: GenerationParams) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class PlainKind:
    @hookimpl
    def modelcycle_register_backends(self) -> Mapping[str, Callable[..., Any]]:
        # Kind ray has no built-in backend here: this plugin provides it.
        return {"ray": lambda source, params: PlainText()}


@pytest.fixture
async def plain(modelcycle_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    services = make_services(modelcycle_settings, plugins=(PlainKind(), Finished()))
    admin = admin_of(services)
    register(services, admin.principal, "plain", source="ray://x", backend="ray")
    services.deployments.create(
        admin.principal, DeploymentSpec(name="plain", routes=[Route(target="plain@1", weight=100)])
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)),
        base_url="http://modelcycle.test",
        headers={"Authorization": f"Bearer {make_key(services, Role.APP).key}"},
    ) as client:
        yield client
    await services.gateway.aclose()
    services.close()


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/completions", {"prompt": "a", "logprobs": 1}, "logprobs"),
        ("/v1/completions", {"prompt": [1, 2]}, "prompt"),
        ("/v1/chat/completions", {"logprobs": True}, "logprobs"),
        ("/v1/embeddings", {"input": "a"}, "model"),
    ],
)
async def test_a_backend_without_a_feature_refuses_it_naming_its_kind(
    plain: httpx.AsyncClient, path: str, body: dict[str, Any], param: str
) -> None:
    full = {"model": "plain", **body}
    if path.endswith("chat/completions"):
        full["messages"] = [{"role": "user", "content": "hi"}]
    response = await plain.post(path, json=full)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["code"] == "unsupported_parameter"
    assert "kind 'ray'" in error["message"]


async def test_a_plain_backend_still_serves_n_and_json_mode(plain: httpx.AsyncClient) -> None:
    response = await plain.post(
        "/v1/chat/completions",
        json={
            "model": "plain",
            "messages": [{"role": "user", "content": "hi"}],
            "n": 2,
            "response_format": {"type": "json_object"},  # passed on for an upstream to enforce
        },
    )
    assert response.status_code == 200, response.text
    assert [c["message"]["content"] for c in response.json()["choices"]] == ["plain", "plain"]


async def test_a_cached_deployment_answers_logprobs_every_time(env: Env) -> None:
    from modelcycle.deploy.schemas import CachePolicy

    env.deploy("cached", (env.version("bot"), 100), cache=CachePolicy(ttl_s=60))
    client = env.openai()
    for _ in range(2):
        answer = await client.completions.create(
            model="cached", prompt="a b", logprobs=1, temperature=0
        )
        assert answer.choices[0].logprobs is not None
        assert answer.choices[0].logprobs.tokens == ["a", " b"]
