"""The ``prompt-search`` method: the best prompt within a call budget, served as searched.

The model is a quiz backend scripted by its prompt: it answers a question
correctly only when a system message asks for concise answers or examples come
before the question, never when asked to answer at length, and never at a
temperature above 1. It applies a version's
``system_prompt``/``few_shot`` params with the same functions the real backends
use, so a registered winner can be checked end to end through the gateway.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from modelcycle.backends import Completion, GenerationParams, Message, Usage
from modelcycle.backends.prompting import render_chat, uses_template, with_prompt_params
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.errors import InvalidInput
from modelcycle.gateway import InferenceRequest
from modelcycle.hookspecs import hookimpl
from modelcycle.registry import VersionCreate, VersionRef
from modelcycle.services import Services
from modelcycle.settings import Settings
from modelcycle.store.datasets import EvalSample, SampleIn
from modelcycle.testing import KeyPair, admin_of, make_services
from modelcycle.tune.prompt_search import ScoreRow, params_for_version, run_prompt_search
from modelcycle.tune.prompt_search_job import prompt_search_job, scorer_function
from modelcycle.tune.prompt_space import Candidate, parse_space

CAPITALS = {
    "France": "Paris",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Japan": "Tokyo",
    "Egypt": "Cairo",
    "Peru": "Lima",
    "Kenya": "Nairobi",
    "Chile": "Santiago",
    "Norway": "Oslo",
    "Canada": "Ottawa",
    "Greece": "Athens",
    "Cuba": "Havana",
}
QUESTION = re.compile(r"capital of (\w+)\?")
CONCISE = "Answer concisely."
EXAMPLES = [
    {"role": "user", "content": "What is the capital of Austria?"},
    {"role": "assistant", "content": "Vienna"},
]


@pytest.fixture
def modelcycle_database_url() -> str | None:
    """The search's logic does not depend on the database: SQLite only."""
    return None


# -- the scripted model ------------------------------------------------------------------


@dataclass
class Seen:
    """What one call showed the model."""

    messages: tuple[Message, ...] | None
    prompt: str | None


@dataclass
class Quiz:
    """Answers right only when asked for concise answers or shown examples (see above)."""

    params: Mapping[str, Any]
    calls: list[Seen] = field(default_factory=list)

    def _answer(self, text: str, guided: bool, params: GenerationParams, shown: int) -> Completion:
        found = QUESTION.findall(text)
        country = found[-1] if found else "nowhere"
        hot = (params.temperature or 0.0) > 1.0
        if guided and not hot:
            answer = CAPITALS.get(country, "unknown")
        else:
            answer = f"Well, {country} is a lovely country with a long and rich history."
        return Completion(answer, "stop", Usage(shown, len(answer.split())))

    async def chat(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        if uses_template(self.params):  # as llamacpp and transformers do
            prompt, rendered = render_chat(messages, self.params, params)
            return await self.complete(prompt, rendered)
        seen = with_prompt_params(messages, self.params)
        self.calls.append(Seen(seen, None))
        system = " ".join(m.content for m in seen if m.role == "system")
        examples = any(m.role == "assistant" for m in seen)
        guided = ("concise" in system or examples) and "at length" not in system
        shown = sum(len(m.content.split()) for m in seen)
        return self._answer(seen[-1].content, guided, params, shown)

    async def complete(self, prompt: str, params: GenerationParams) -> Completion:
        self.calls.append(Seen(None, prompt))
        guided = "concise" in prompt or prompt.count("?\nA:") > 1
        guided = guided and "at length" not in prompt
        return self._answer(prompt, guided, params, len(prompt.split()))

    def stream_chat(self, messages: Any, params: GenerationParams) -> Any:
        raise NotImplementedError

    def stream_complete(self, prompt: str, params: GenerationParams) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class QuizKind:
    """Registers ``Quiz`` as kind ``ray`` (no built-in backend has it)."""

    @hookimpl
    def modelcycle_register_backends(self) -> Mapping[str, Callable[..., Any]]:
        return {"ray": lambda source, params: Quiz(params)}


@pytest.fixture
def services(modelcycle_settings: Settings) -> Any:
    built = make_services(modelcycle_settings, plugins=(QuizKind(),))
    yield built
    built.close()


@pytest.fixture
def admin(services: Services) -> KeyPair:
    return admin_of(services)


def base_version(services: Services, admin: KeyPair, **params: Any) -> str:
    created = services.registry.register_version(
        admin.principal,
        "quiz",
        VersionCreate(source="quiz://capitals", backend="ray", params=params),
    )
    return f"quiz@{created.version}"


def backend_of(services: Services, params: Mapping[str, Any]) -> Quiz:
    found = services.gateway.backends.get("ray", "quiz://capitals", params)
    assert isinstance(found, Quiz)
    return found


def samples(countries: Sequence[str] = tuple(CAPITALS)) -> list[EvalSample]:
    out = []
    for position, country in enumerate(countries):
        sample = SampleIn(
            {"messages": [{"role": "user", "content": f"What is the capital of {country}?"}]},
            CAPITALS[country],
        )
        out.append(
            EvalSample(position + 1, position, sample.input, sample.expected, {}, None,
                       sample.content_hash)
        )  # fmt: skip
    return out


def exact(rows: list[ScoreRow]) -> list[float | None]:
    return [None if e is None else float(o.strip() == e) for o, e, _ in rows]


SPACE = {
    "system_prompts": [None, "Answer at length.", CONCISE],
    "few_shot": [[], EXAMPLES],
    "temperature": [0.0, 1.5],
}


# -- finding the right candidate ------------------------------------------------------------


async def test_the_search_finds_the_prompt_that_makes_the_model_right(
    services: Services, admin: KeyPair
) -> None:
    base = base_version(services, admin, temperature=0.0)
    progress: list[float] = []
    result = await run_prompt_search(
        gateway=services.gateway, principal=admin.principal, base=base, samples=samples(),
        score=exact, space=SPACE, budget=120, seed=3,
        report=lambda fraction, _metrics, _log: progress.append(fraction),
    )  # fmt: skip
    # The concise system prompt and the examples are both always right; the system
    # prompt costs fewer tokens per call, so it wins the tie.
    assert result.best == Candidate(system_prompt=CONCISE, temperature=0.0)
    assert result.best_score == 1.0
    assert result.best_trial.n == len(CAPITALS)  # the leftover budget went to the winner
    hot = [t for t in result.trials if t.candidate.temperature == 1.5]
    assert len(hot) == 6
    assert all(t.score == 0.0 and t.eliminated_in for t in hot)
    assert progress[0] == 0.0
    assert progress[-1] == 1.0
    assert progress == sorted(progress)
    # The base as it is never answers right, and was dropped in the first round.
    plain = next(t for t in result.trials if t.candidate == Candidate(temperature=0.0))
    assert plain.score == 0.0


@pytest.mark.parametrize("budget", [5, 13, 40, 500])
async def test_the_search_never_exceeds_its_budget(
    services: Services, admin: KeyPair, budget: int
) -> None:
    base = base_version(services, admin)
    result = await run_prompt_search(
        gateway=services.gateway, principal=admin.principal, base=base, samples=samples(),
        score=exact, space=SPACE, budget=budget, seed=1,
    )  # fmt: skip
    calls = len(backend_of(services, {}).calls)
    assert calls == result.calls_used <= budget
    assert sum(t.calls for t in result.trials) == calls
    # Halving 12 candidates down to one from one sample each takes about 36 calls;
    # below that a seeded subset races.
    if budget < 36:
        assert 1 < len(result.trials) < 12
    else:
        assert len(result.trials) == 12
    if budget == 500:  # enough for everyone on every sample: nothing left to spend it on
        assert calls < budget


async def test_the_same_seed_gives_the_same_search(services: Services, admin: KeyPair) -> None:
    base = base_version(services, admin)

    async def once(seed: int) -> dict[str, Any]:
        result = await run_prompt_search(
            gateway=services.gateway, principal=admin.principal, base=base, samples=samples(),
            score=exact, space=SPACE, budget=30, seed=seed, concurrency=3,
        )  # fmt: skip
        return result.as_json()

    first = await once(7)
    assert await once(7) == first
    assert first["calls_used"] <= 30


async def test_should_stop_ends_the_search_with_the_best_so_far(
    services: Services, admin: KeyPair
) -> None:
    base = base_version(services, admin)
    model = backend_of(services, {})
    result = await run_prompt_search(
        gateway=services.gateway, principal=admin.principal, base=base, samples=samples(),
        score=exact, space=SPACE, budget=200, seed=0, concurrency=1,
        should_stop=lambda: len(model.calls) >= 5,
    )  # fmt: skip
    assert result.stopped
    assert result.calls_used == len(model.calls) == 5
    assert result.best in {t.candidate for t in result.trials if t.calls}


# -- the winner becomes a version that serves the searched prompt --------------------------


async def test_the_registered_winner_serves_the_prompt_that_was_searched(
    services: Services, admin: KeyPair
) -> None:
    # The base already has a system prompt (that makes it ramble) and an example.
    base_params = {"system_prompt": "Answer at length.", "few_shot": EXAMPLES}
    base = base_version(services, admin, **base_params)
    lisbon = [{"role": "user", "content": "What is the capital of Portugal?"},
              {"role": "assistant", "content": "Lisbon"}]  # fmt: skip
    space = {"system_prompts": [None, CONCISE], "few_shot": [lisbon]}
    result = await run_prompt_search(
        gateway=services.gateway, principal=admin.principal, base=base, samples=samples(),
        score=exact, space=space, budget=40, seed=2,
    )  # fmt: skip
    assert result.best == Candidate(system_prompt=CONCISE, few_shot=_pairs(lisbon))
    params = params_for_version(base_params, result.best)
    # The winner's system prompt replaces the base's; its example follows the base's.
    assert params == {"system_prompt": CONCISE, "few_shot": [*EXAMPLES, *lisbon]}
    created = services.registry.register_version(
        admin.principal,
        "quiz",
        VersionCreate(source="quiz://capitals", backend="ray", params=params,
                      parent=VersionRef(model="quiz", version=1)),
    )  # fmt: skip
    assert created.parent is not None
    assert created.parent.version == 1
    services.deployments.create(
        admin.principal,
        DeploymentSpec(name="quiz", routes=[Route(target=f"quiz@{created.version}", weight=100)]),
    )
    question = (Message("user", "What is the capital of Peru?"),)
    served = await services.gateway.generate(
        admin.principal,
        InferenceRequest(endpoint="chat.completions", deployment="quiz", messages=question,
                         prompt=None, params=GenerationParams(), user=None, stream=False),
    )  # fmt: skip
    assert served.completion.text == "Lima"
    shown = backend_of(services, params).calls[-1].messages
    searched = [c.messages for c in backend_of(services, base_params).calls]
    assert shown in searched  # the very messages the winner was scored with
    assert shown is not None
    assert shown[0] == Message("system", CONCISE)


async def test_a_completion_versions_winner_serves_the_searched_prompt(
    services: Services, admin: KeyPair
) -> None:
    base_params = {"prompt_format": "completion", "prompt_template": "{system}\nQ: {prompt}\nA:"}
    base = base_version(services, admin, **base_params)
    space = {"system_prompts": [None, "Answer at length."], "few_shot": [[], EXAMPLES]}
    result = await run_prompt_search(
        gateway=services.gateway, principal=admin.principal, base=base, samples=samples(),
        score=exact, space=space, budget=30, seed=0,
    )  # fmt: skip
    assert result.best.few_shot is not None
    assert result.best_score == 1.0
    params = params_for_version(base_params, result.best)
    version = services.registry.register_version(
        admin.principal,
        "quiz",
        VersionCreate(source="quiz://capitals", backend="ray", params=params),
    )
    services.deployments.create(
        admin.principal,
        DeploymentSpec(name="quiz", routes=[Route(target=f"quiz@{version.version}", weight=100)]),
    )
    question = (Message("user", "What is the capital of Peru?"),)
    served = await services.gateway.generate(
        admin.principal,
        InferenceRequest(endpoint="chat.completions", deployment="quiz", messages=question,
                         prompt=None, params=GenerationParams(), user=None, stream=False),
    )  # fmt: skip
    assert served.completion.text == "Lima"
    shown = backend_of(services, params).calls[-1].prompt
    assert shown == (
        "\nQ: What is the capital of Austria?\nA: Vienna\n\nQ: What is the capital of Peru?\nA:"
    )
    assert shown in [c.prompt for c in backend_of(services, base_params).calls]


def _pairs(messages: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((m["role"], m["content"]) for m in messages)


# -- the job entry, examples from the training data, bad input -----------------------------


def test_a_job_draws_examples_from_training_data_and_scores_on_the_rest(
    services: Services, admin: KeyPair
) -> None:
    base = base_version(services, admin, temperature=0.0)
    everything = samples()
    made: list[tuple[str, Mapping[str, Any]]] = []

    def factory(
        name: str, options: Mapping[str, Any]
    ) -> Callable[[list[ScoreRow]], list[float | None]]:
        made.append((name, options))
        return exact

    outcome = prompt_search_job(
        gateway=services.gateway, principal=admin.principal, base=base,
        eval_samples=everything, training_samples=everything[:4],
        hyperparameters={"budget": 60, "seed": 5, "candidates": {
            "few_shot_from_dataset": {"k": 2, "sets": 2}, "scorer": "exact_match",
            "scorer_options": {"normalize": True}}},
        score_factory=factory,
    )  # fmt: skip
    assert made == [("exact_match", {"normalize": True})]
    drawn = {m["content"] for m in outcome.params["few_shot"] if m["role"] == "assistant"}
    assert len(drawn) == 2
    assert drawn <= set(list(CAPITALS.values())[:4])
    assert outcome.params["temperature"] == 0.0  # the base's own, kept
    assert outcome.metrics["score"] == 1.0
    assert outcome.metrics["baseline_score"] == 0.0
    # Samples shown as examples are never the ones the winner is scored on.
    asked = {m.content for c in backend_of(services, {"temperature": 0.0}).calls
             for m in (c.messages or ())[-1:]}  # fmt: skip
    assert not any(country in text for text in asked for country in _drawn_countries(drawn))


def _drawn_countries(capitals: set[str]) -> list[str]:
    return [country for country, capital in CAPITALS.items() if capital in capitals]


def test_scorer_function_adapts_a_scorer_registry(services: Services) -> None:
    from modelcycle.evaluate.scorers import ScoringInput, score_batch

    score = scorer_function(services.scorers.build, ScoringInput, "exact_match")
    assert score([("Rome", "Rome", ""), ("Paris", "Rome", "")]) == [1.0, 0.0]
    checked = scorer_function(
        services.scorers.build, ScoringInput, "exact_match", {"ignore_case": True},
        batch=score_batch,
    )  # fmt: skip
    assert checked([("rome", "Rome", ""), ("x", None, "")]) == [1.0, None]


@pytest.mark.parametrize(
    ("space", "needle"),
    [
        ({"sytem_prompts": ["x"]}, "unknown key(s) sytem_prompts"),
        ({"temperature": [3]}, "temperature values must be a number from 0 to 2"),
        ({"max_tokens": [1.5]}, "max_tokens values must be an integer"),
        ({"few_shot": [[{"role": "system", "content": "x"}]]}, "few_shot[0][0] must be"),
        ({"system_prompts": [1]}, "system_prompts[0] must be a string or null"),
        ({"few_shot_from_dataset": {"k": 2}}, "needs a training dataset"),
    ],
)
def test_a_bad_space_is_refused_naming_the_problem(space: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_space(space)
    assert needle in caught.value.message


async def test_no_budget_or_no_samples_is_refused(services: Services, admin: KeyPair) -> None:
    base = base_version(services, admin)
    for budget, given in ((0, samples()), (10, [])):
        with pytest.raises(InvalidInput):
            await run_prompt_search(
                gateway=services.gateway, principal=admin.principal, base=base, samples=given,
                score=exact, space=SPACE, budget=budget,
            )  # fmt: skip
    assert backend_of(services, {}).calls == []
