"""``llm_judge`` and ``llm_judge_pairwise``: parsing, retries, order swapping, a real gateway."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from modelcycle.backends import GenerationParams
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.errors import InvalidInput
from modelcycle.evaluate.caller import Answer, SyncCaller, TargetCaller, calling
from modelcycle.evaluate.scorers import BuiltinScorers, ScorerRegistry, ScoringInput, score_batch
from modelcycle.evaluate.scorers.judge import (
    NO_CALLER,
    JudgeOptions,
    LLMJudge,
    PairwiseJudge,
    PairwiseOptions,
)
from modelcycle.evaluate.scorers.judge_parse import parse_score, parse_verdict
from modelcycle.services import Services
from modelcycle.testing import KeyPair, register

Reply = str | Answer | Exception | Callable[[list[dict[str, Any]]], str]


class FakeJudge:
    """A judge answering from a script, one reply per call (the last one repeats)."""

    def __init__(self, *replies: Reply):
        self.replies = list(replies)
        self.calls: list[tuple[str, list[dict[str, Any]], GenerationParams | None]] = []
        self._lock = threading.Lock()

    def complete(
        self,
        target: str,
        messages: Sequence[Mapping[str, Any]],
        params: GenerationParams | None = None,
        *,
        timeout_s: float = 120.0,
    ) -> Answer:
        sent = [dict(message) for message in messages]
        with self._lock:
            self.calls.append((target, sent, params))
            reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, Answer):
            return reply
        text = reply(sent) if callable(reply) else reply
        return Answer(text, trace_id=f"trace-{len(self.calls)}")

    def prompt(self, call: int) -> str:
        return str(self.calls[call][1][-1]["content"])


def judge(fake: FakeJudge, **options: Any) -> LLMJudge:
    return LLMJudge(JudgeOptions(judge="judge-70b", **options), fake, retry_delay_s=0)


def pairwise(fake: FakeJudge, **options: Any) -> PairwiseJudge:
    return PairwiseJudge(PairwiseOptions(judge="judge-70b", **options), fake, retry_delay_s=0)


SAMPLE = ScoringInput("Paris is the capital of France.", "Paris", "What is the capital of France?")


# --- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        ("The answer is accurate and complete.\nScore: 4", 4.0),
        ("Score: 4", 4.0),
        ("score = 4/5", 4.0),
        ("**Rating:** 4 out of 5", 4.0),
        ("Final score: 3.5", 3.5),
        ("Overall rating is 2.", 2.0),
        ("Score (1-5): 5", 5.0),
        ("Rating: [[3]]", 3.0),
        ('{"score": 4, "reasoning": "good"}', 4.0),
        ('```json\n{"reasoning": "good", "rating": "2"}\n```', 2.0),
        ("Good answer, detailed and correct. [[5]]", 5.0),
        ("All things considered I would give it 4/5", 4.0),
        ("Mostly right, 3 out of 5.", 3.0),
        ("4", 4.0),
        (" 4. ", 4.0),
        ("<think>Score: 1? No, it is better.</think>\nScore: 5", 5.0),
        # a score mentioned mid-reasoning is not the final one
        ("A score of 2 would be too harsh: it is correct.\n\nIt cites a source.\nScore: 4", 4.0),
        ("Score: 4\nScore: 4", 4.0),  # repeated, not conflicting
        ("## Score: 1", 1.0),
    ],
)
def test_scores_are_read_from_every_common_format(text: str, raw: float) -> None:
    parsed = parse_score(text, 1, 5)
    assert parsed.problem is None
    assert parsed.raw == raw


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("The response is good.", "no score found"),
        ("", "empty"),
        ("<think>Let me think about whether this deserves a 4", "empty"),
        ("Score: 7", "outside 1..5"),
        ("Score: 0", "outside 1..5"),
        ("Score: 8/10", "not out of 5"),
        ("Score: 3\nScore: 5", "several different final scores (3, 5)"),
        ("Score: 3 or Score: 4", "several different final scores (3, 4)"),
        ("Score: 3-4", "no score found"),
        ("It is about 3 or 4", "no score found"),
        ("I'd rate it between 2 and 4.", "no score found"),
    ],
)
def test_unreadable_scores_are_problems_not_values(text: str, problem: str) -> None:
    parsed = parse_score(text, 1, 5)
    assert parsed.raw is None
    assert parsed.problem is not None
    assert problem in parsed.problem


def test_the_reasoning_is_what_precedes_the_final_score() -> None:
    parsed = parse_score("<think>hidden</think>Clear and *correct*.\nScore: 5", 1, 5)
    assert parsed.reasoning == "Clear and *correct*."
    assert parse_score("Mostly right, 3 out of 5.", 1, 5).reasoning == "Mostly right,"


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Response A is more complete.\n[[A]]", "A"),
        ("[[B]]", "B"),
        ("Both are equally good. [[C]]", "tie"),
        ("Final verdict: [[b]]", "B"),
        ("Verdict: A", "A"),
        ("Winner: Assistant B", "B"),
        ("Better response: tie", "tie"),
        ("B", "B"),
        ("Tie.", "tie"),
        ("**Response A**", "A"),
        ("<think>[[B]] maybe</think>[[A]]", "A"),
    ],
)
def test_verdicts_are_read_in_mt_bench_and_plain_forms(text: str, verdict: str) -> None:
    parsed = parse_verdict(text)
    assert parsed.problem is None
    assert parsed.verdict == verdict


@pytest.mark.parametrize(
    "text",
    [
        "Both have merits.",
        "Verdict: a bit better for the first one",  # lower-case 'a' is a word, not a verdict
        "[[A]] or [[B]], hard to say",
        "",
    ],
)
def test_unreadable_verdicts_are_problems(text: str) -> None:
    parsed = parse_verdict(text)
    assert parsed.verdict is None
    assert parsed.problem


# --- llm_judge --------------------------------------------------------------------------


def test_a_score_is_normalised_with_its_evidence() -> None:
    fake = FakeJudge("Correct and to the point.\nScore: 4")
    score = judge(fake, max_tokens=300).score(SAMPLE)
    assert score.value == 0.75
    assert score.details["raw_score"] == 4.0
    assert score.details["reasoning"] == "Correct and to the point."
    assert score.details["attempts"] == 1
    assert score.details["judge"] == "judge-70b"
    assert score.details["rubric"] == "helpfulness"
    assert score.details["trace_id"] == "trace-1"
    target, messages, params = fake.calls[0]
    assert target == "judge-70b"
    assert params == GenerationParams(max_tokens=300, temperature=0.0)
    assert messages[0]["role"] == "system"
    prompt = messages[1]["content"]
    assert "What is the capital of France?" in prompt
    assert "Paris is the capital of France." in prompt
    assert "HELPFUL" in prompt
    assert '"Score: N"' in prompt
    assert "from 1 to 5" in prompt


def test_garbage_then_a_good_answer_is_scored_on_the_second_attempt() -> None:
    fake = FakeJudge("I think it is fine overall.", "Score: 5")
    score = judge(fake).score(SAMPLE)
    assert score.value == 1.0
    assert score.details["attempts"] == 2
    retry = fake.calls[1][1]
    assert retry[-2] == {"role": "assistant", "content": "I think it is fine overall."}
    assert "could not read a score" in retry[-1]["content"]
    assert "no score found" in retry[-1]["content"]


def test_garbage_always_is_an_error_never_a_value() -> None:
    fake = FakeJudge("It is good." * 200)
    score = judge(fake, retries=2).score(SAMPLE)
    assert score.value is None
    assert not score.ok
    assert score.error is not None
    assert "unreadable judge answer" in score.error
    assert "after 3 attempts" in score.error
    assert len(fake.calls) == 3
    assert score.details["attempts"] == 3
    assert score.details["raw"].startswith("It is good.")
    assert len(score.details["raw"]) == 1000  # truncated


def test_an_out_of_range_score_is_asked_again() -> None:
    fake = FakeJudge("Excellent!\nScore: 9", "Score: 2")
    score = judge(fake).score(SAMPLE)
    assert score.value == 0.25
    assert "outside 1..5" in fake.prompt(1)


def test_a_cut_off_answer_is_asked_to_be_shorter() -> None:
    fake = FakeJudge(Answer("The response is long and", finish_reason="length"), "Score: 3")
    score = judge(fake).score(SAMPLE)
    assert score.value == 0.5
    assert "cut off" in fake.prompt(1)


def test_judge_errors_are_retried_then_the_sample_fails() -> None:
    fake = FakeJudge(Answer(None, error="upstream_error: judge unavailable"))
    score = judge(fake, retries=1).score(SAMPLE)
    assert score.value is None
    assert score.error is not None
    assert "judge judge-70b failed: upstream_error: judge unavailable" in score.error
    assert len(fake.calls) == 2
    assert fake.calls[0][1] == fake.calls[1][1]  # the same question again, no reminder


def test_an_error_then_an_answer_scores() -> None:
    fake = FakeJudge(TimeoutError(), "Score: 5")
    score = judge(fake).score(SAMPLE)
    assert score.value == 1.0
    assert score.details["attempts"] == 2


def test_a_caller_that_raises_fails_the_sample_not_the_batch() -> None:
    fake = FakeJudge(RuntimeError("loop closed"))
    scores = score_batch(judge(fake, retries=0), [SAMPLE, SAMPLE])
    assert [score.value for score in scores] == [None, None]
    assert all("RuntimeError: loop closed" in (score.error or "") for score in scores)


def test_a_custom_scale() -> None:
    fake = FakeJudge("Score: 7/10")
    score = judge(fake, scale_min=0, scale_max=10).score(SAMPLE)
    assert score.value == 0.7
    assert "from 0 to 10" in fake.prompt(0)


def test_correctness_needs_the_expected_answer_and_shows_it() -> None:
    fake = FakeJudge("Score: 5")
    scorer = judge(fake, rubric="correctness")
    assert scorer.needs_reference
    missing = scorer.score(ScoringInput("Paris", None, "Capital of France?"))
    assert missing.value is None
    assert "no expected answer" in (missing.error or "")
    assert fake.calls == []
    assert scorer.score(ScoringInput("It is Paris", "Paris", "Capital?")).value == 1.0
    assert "[Reference answer]\nParis\n" in fake.prompt(0)


@pytest.mark.parametrize("rubric", ["faithfulness", "groundedness"])
def test_faithfulness_reads_the_context_from_metadata(rubric: str) -> None:
    fake = FakeJudge("Score: 1")
    scorer = judge(fake, rubric=rubric)
    assert not scorer.needs_reference
    assert (
        scorer.score(SAMPLE).error
        == f"llm_judge: rubric {rubric} needs the sample's metadata 'context'"
    )
    passages = ScoringInput(
        "Lyon.", None, "Capital?", {"context": ["Paris is the capital.", "Lyon is big."]}
    )
    assert scorer.score(passages).value == 0.0
    assert "[1] Paris is the capital.\n\n[2] Lyon is big." in fake.prompt(0)


def test_a_custom_template_is_filled_once_without_re_expanding_sample_text() -> None:
    fake = FakeJudge("Score: 3")
    template = "Is this polite ({min} rude, {max} polite)? Q: {input} A: {output} {{literal}}"
    scorer = judge(fake, rubric=template)
    assert not scorer.needs_reference
    score = scorer.score(ScoringInput("Go away {input} {expected}", None, "Hi"))
    assert score.value == 0.5
    assert score.details["rubric"] == "custom"
    prompt = fake.prompt(0)
    assert prompt.startswith(
        "Is this polite (1 rude, 5 polite)? Q: Hi A: Go away {input} {expected} {literal}"
    )


def test_chat_messages_are_shown_as_turns() -> None:
    fake = FakeJudge("Score: 4")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    judge(fake).score(ScoringInput("Hello.", None, messages))
    assert "system: Be brief.\nuser: Hi?" in fake.prompt(0)


def test_outside_a_run_the_judge_says_it_needs_a_model() -> None:
    scorer = LLMJudge(JudgeOptions(judge="judge-70b"))
    assert scorer.score(SAMPLE).error == NO_CALLER
    assert [s.error for s in scorer.score_many([SAMPLE, SAMPLE])] == [NO_CALLER, NO_CALLER]


def by_output(messages: list[dict[str, Any]]) -> str:
    """A judge that gives 5 to answers mentioning Paris and 1 to the others."""
    return "Score: 5" if "Paris" in messages[-1]["content"].split("[Response]")[1] else "Score: 1"


def test_the_run_caller_is_found_in_the_context_and_reaches_the_pool_threads() -> None:
    fake = FakeJudge(by_output)
    scorer = LLMJudge(JudgeOptions(judge="judge-70b", parallel=3))
    samples = [ScoringInput("Paris" if i % 2 else "Rome", None, f"q{i}") for i in range(7)]
    with calling(fake):  # type: ignore[arg-type]  # any SyncCaller look-alike
        scores = score_batch(scorer, samples)
        single = scorer.score(samples[1])
    assert [score.value for score in scores] == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert single.value == 1.0
    assert len(fake.calls) == 8


# --- llm_judge_pairwise -----------------------------------------------------------------


def pair(candidate: str, baseline: str | None = "Baseline answer.") -> ScoringInput:
    metadata = {} if baseline is None else {"_baseline_output": baseline}
    return ScoringInput(candidate, None, "What is the capital of France?", metadata)


def prefers(word: str) -> Callable[[list[dict[str, Any]]], str]:
    """A judge that picks whichever position holds the answer containing ``word``."""

    def reply(messages: list[dict[str, Any]]) -> str:
        prompt = messages[-1]["content"]
        first = prompt.split("[Response A]")[1].split("[End of response A]")[0]
        return "[[A]]" if word in first else "[[B]]"

    return reply


def test_the_order_is_swapped_and_a_consistent_preference_counts() -> None:
    fake = FakeJudge(prefers("Paris"))
    score = pairwise(fake).score(pair("Paris.", "Rome."))
    assert score.value == 1.0
    assert score.details["consistent"] is True
    assert score.details["verdicts"] == {"candidate_first": "A", "baseline_first": "B"}
    assert score.details["attempts"] == 2
    first, second = fake.prompt(0), fake.prompt(1)
    assert "[Response A]\nParis.\n" in first
    assert "[Response B]\nRome.\n" in first
    assert "[Response A]\nRome.\n" in second
    assert "[Response B]\nParis.\n" in second
    assert pairwise(FakeJudge(prefers("Rome"))).score(pair("Paris.", "Rome.")).value == 0.0


def test_a_position_biased_judge_gives_an_inconsistent_tie() -> None:
    score = pairwise(FakeJudge("A is better.\n[[A]]")).score(pair("Paris.", "Rome."))
    assert score.value == 0.5
    assert score.details["consistent"] is False
    assert score.details["verdicts"] == {"candidate_first": "A", "baseline_first": "A"}


def test_a_tie_both_ways_is_a_consistent_half() -> None:
    score = pairwise(FakeJudge("[[C]]")).score(pair("Paris.", "Paris!"))
    assert score.value == 0.5
    assert score.details["consistent"] is True


def test_an_unreadable_verdict_is_retried_and_a_lost_order_fails_the_sample() -> None:
    fake = FakeJudge("Hmm.", "[[A]]", "no idea", "still no idea", "really")
    score = pairwise(fake, retries=2).score(pair("Paris.", "Rome."))
    assert score.value is None
    assert score.error is not None
    assert "unreadable judge answer" in score.error
    assert score.details["order"] == "baseline_first"
    assert score.details["verdicts"] == {"candidate_first": "A"}
    assert len(fake.calls) == 5
    assert "[[C]]" in fake.prompt(1)
    assert "could not read a verdict" in fake.prompt(1)


def test_without_the_baseline_answer_pairwise_fails() -> None:
    fake = FakeJudge("[[A]]")
    score = pairwise(fake).score(pair("Paris.", None))
    assert score.value is None
    assert "no baseline answer" in (score.error or "")
    assert fake.calls == []
    assert PairwiseJudge.needs_baseline is True


def test_the_reference_answer_guides_the_pairwise_judge_when_there_is_one() -> None:
    fake = FakeJudge("[[A]]")
    sample = ScoringInput("Paris.", "Paris", "Capital?", {"_baseline_output": "Rome."})
    pairwise(fake, criteria="Which is factually right?").score(sample)
    assert "[Reference answer]\nParis\n" in fake.prompt(0)
    assert "Which is factually right?" in fake.prompt(0)


# --- options through the registry -------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> ScorerRegistry:
    return ScorerRegistry(BuiltinScorers().modelcycle_register_scorers())


def test_the_registry_builds_both_with_their_options(registry: ScorerRegistry) -> None:
    built = registry.build(
        "llm_judge", {"judge": "judge-70b", "rubric": "correctness", "retries": 0}
    )
    assert isinstance(built, LLMJudge)
    assert (built.kind, built.needs_reference, built.options.retries) == ("continuous", True, 0)
    pair_judge = registry.build("llm_judge_pairwise", {"judge": "judges@2"})
    assert isinstance(pair_judge, PairwiseJudge)
    assert pair_judge.options.judge == "judges@2"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"judge": "j", "rubric": "politeness"}, "option 'rubric': unknown rubric 'politeness'"),
        ({}, "option 'judge': Field required"),
        (
            {"judge": "j", "scale_min": 5, "scale_max": 5},
            "option 'scale_min' (5) must be below 'scale_max' (5)",
        ),
        ({"judge": "j", "rubric": "Rate {output} against {truth}"}, "unknown placeholder {truth}"),
        (
            {"judge": "j", "rubric": "Rate {output:>999999999}"},
            "unknown placeholder {output:>999999999}",
        ),
        (
            {"judge": "j", "rubric": "Rate {input.__class__}"},
            "unknown placeholder {input.__class__}",
        ),
        ({"judge": "j", "rubric": "Rate the {input}"}, "add {output}"),
        ({"judge": "j", "rubric": "Rate {output} }"}, "literal braces"),
        ({"judge": "j", "retries": -1}, "option 'retries'"),
        ({"judge": "j", "temperature": 3}, "option 'temperature'"),
        ({"judge": "j", "model": "x"}, "unknown option 'model'"),
    ],
)
def test_bad_options_are_refused_naming_the_problem(
    registry: ScorerRegistry, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        registry.build("llm_judge", options)
    assert refused.value.message.startswith("scorer llm_judge: ")
    assert message in refused.value.message


def test_pairwise_options_are_checked_too(registry: ScorerRegistry) -> None:
    with pytest.raises(InvalidInput, match="option 'judge'"):
        registry.build("llm_judge_pairwise", {"criteria": "better"})
    with pytest.raises(InvalidInput, match="unknown option 'rubric'"):
        registry.build("llm_judge_pairwise", {"judge": "j", "rubric": "helpfulness"})


# --- a real gateway ---------------------------------------------------------------------


async def test_a_deployment_judges_through_the_gateway_and_is_traced(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    services, admin = modelcycle_services, modelcycle_admin
    register(services, admin.principal, "grader", params={"replies": ["Accurate.\nScore: 4"]})
    services.deployments.create(
        admin.principal,
        DeploymentSpec(name="grader", routes=[Route(target="grader@1", weight=100)]),
    )
    caller = TargetCaller(services.gateway, admin.principal, metadata={"eval_run": "judge-test"})
    bridge = SyncCaller(caller, asyncio.get_running_loop())
    by_deployment = services.scorers.build("llm_judge", {"judge": "grader"})
    by_version = services.scorers.build("llm_judge", {"judge": "grader@1"})
    try:
        with calling(bridge):
            score = await asyncio.to_thread(by_deployment.score, SAMPLE)
            versioned = await asyncio.to_thread(by_version.score_many, [SAMPLE, SAMPLE])
    finally:
        await services.gateway.aclose()
    assert score.value == 0.75, score
    assert score.details["reasoning"] == "Accurate."
    assert [s.value for s in versioned] == [0.75, 0.75]
    services.recorder.flush()
    trace = services.traces.get(admin.principal, score.details["trace_id"])
    assert trace.spans[0].deployment == "grader"
    assert trace.spans[0].model == "grader"


async def test_on_the_event_loop_the_judge_fails_fast_instead_of_deadlocking(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    caller = TargetCaller(modelcycle_services.gateway, modelcycle_admin.principal)
    scorer = LLMJudge(JudgeOptions(judge="grader"))
    with calling(SyncCaller(caller, asyncio.get_running_loop())):
        score = scorer.score(SAMPLE)
    assert score.error is not None
    assert "worker thread" in score.error
