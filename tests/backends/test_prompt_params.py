"""Version params ``system_prompt`` and ``few_shot``: every caller gets the version's prompt.

Chat versions put the system message (when the request has none) and the
examples in front of the request's conversation; ``completion`` versions render
the examples as filled-in frames before the request's own; registration
refuses malformed ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backends.openai_upstream import MockUpstream
from modelcycle.backends import GenerationParams, Message
from modelcycle.backends.mock import MockBackend
from modelcycle.backends.openai_compat import OpenAICompatBackend
from modelcycle.backends.prompting import render_chat, with_prompt_params
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.errors import InvalidInput
from modelcycle.services import DEFAULT_MODEL_PARAMS, Services
from modelcycle.testing import KeyPair, register

EXAMPLES = [
    {"role": "user", "content": "Capital of Spain?"},
    {"role": "assistant", "content": "Madrid."},
]
PROMPTED = {"system_prompt": "Answer concisely.", "few_shot": EXAMPLES}
QUESTION = Message("user", "Capital of Italy?")


@pytest.fixture
def modelcycle_database_url() -> str | None:
    """Rendering does not depend on the database: SQLite only."""
    return None


def test_the_system_prompt_and_examples_come_before_the_conversation() -> None:
    seen = with_prompt_params([QUESTION], PROMPTED)
    assert seen == (
        Message("system", "Answer concisely."),
        Message("user", "Capital of Spain?"),
        Message("assistant", "Madrid."),
        QUESTION,
    )


def test_a_callers_own_system_message_wins_and_examples_follow_it() -> None:
    own = Message("system", "Answer in French.")
    seen = with_prompt_params([own, QUESTION], PROMPTED)
    assert seen == (
        own,
        Message("user", "Capital of Spain?"),
        Message("assistant", "Madrid."),
        QUESTION,
    )
    assert with_prompt_params([QUESTION], {"temperature": 0.1}) == (QUESTION,)


def test_applying_two_sets_of_params_equals_applying_them_merged() -> None:
    """What a prompt search relies on: candidate first, then the base version, stacks."""
    base = {"few_shot": EXAMPLES}
    candidate = {
        "system_prompt": "Be brief.",
        "few_shot": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
    }
    merged = {"system_prompt": "Be brief.", "few_shot": [*EXAMPLES, *candidate["few_shot"]]}
    stacked = with_prompt_params(with_prompt_params([QUESTION], candidate), base)
    assert stacked == with_prompt_params([QUESTION], merged)


def test_a_completion_version_renders_examples_as_frames_before_the_question() -> None:
    params = {**DEFAULT_MODEL_PARAMS, "few_shot": EXAMPLES}
    prompt, rendered = render_chat([QUESTION], params, GenerationParams())
    assert prompt.endswith(
        "Answer: Seven.\n\n"
        "Question: Capital of Spain?\nAnswer: Madrid.\n\n"
        "Question: Capital of Italy?\nAnswer:"
    )
    assert rendered.stop == ("\nQuestion:", "\n\n")


def test_a_completion_versions_system_prompt_fills_the_system_slot() -> None:
    params = {
        "prompt_format": "completion",
        "prompt_template": "{system}\nQ: {prompt}\nA:",
        "system_prompt": "Be brief.",
        "few_shot": [{"role": "user", "content": "What is {prompt}?"}, *EXAMPLES[1:]],
    }
    prompt, _ = render_chat([QUESTION], params, GenerationParams())
    assert prompt == "Be brief.\nQ: What is {prompt}?\nA: Madrid.\n\nQ: Capital of Italy?\nA:"
    own, _ = render_chat([Message("system", "Mine."), QUESTION], params, GenerationParams())
    assert own.startswith("Mine.\nQ: What is")


async def test_a_deployed_version_serves_its_prompt_to_every_caller(
    modelcycle_services: Services, modelcycle_admin: KeyPair, modelcycle_api: httpx.AsyncClient
) -> None:
    params = {"temperature": 0.0, **PROMPTED}
    version = register(modelcycle_services, modelcycle_admin.principal, "bot", params=params)
    modelcycle_services.deployments.create(
        modelcycle_admin.principal,
        DeploymentSpec(name="bot", routes=[Route(target=f"bot@{version.version}", weight=100)]),
    )
    response = await modelcycle_api.post(
        "/v1/chat/completions",
        json={"model": "bot", "messages": [{"role": "user", "content": "Capital of Italy?"}]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Capital of Italy?"
    backend = modelcycle_services.gateway.backends.get("mock", "mock://echo", params)
    assert isinstance(backend, MockBackend)
    assert backend.calls[-1].messages == with_prompt_params([QUESTION], PROMPTED)
    assert backend.calls[-1].messages[0] == Message("system", "Answer concisely.")


def test_registration_refuses_malformed_prompt_params(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    with pytest.raises(InvalidInput) as caught:
        register(
            modelcycle_services,
            modelcycle_admin.principal,
            "bad",
            params={"system_prompt": 3, "few_shot": [{"role": "system", "content": "x"}]},
        )
    assert "params.system_prompt must be a string" in caught.value.message
    assert "params.few_shot[0]" in caught.value.message


@pytest.fixture
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as server:
        yield server


async def test_an_openai_version_sends_its_prompt_upstream(upstream: MockUpstream) -> None:
    backend = OpenAICompatBackend(upstream.url, {"model": "m", **PROMPTED})
    try:
        await backend.chat([QUESTION], GenerationParams())
    finally:
        await backend.close()
    assert upstream.requests[-1].body["messages"] == [
        {"role": "system", "content": "Answer concisely."},
        *EXAMPLES,
        {"role": "user", "content": "Capital of Italy?"},
    ]
