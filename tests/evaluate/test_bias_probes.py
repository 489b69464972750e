"""Counterfactual bias probes: the pairs, the sentiment and length scorers, the report."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from evaluate.safety_backend import ScriptedByPrompt
from modelcycle.backends import GenerationParams, Message
from modelcycle.evaluate.bias import ATTRIBUTES, bias_report, bias_samples, holm
from modelcycle.evaluate.schemas import EvalResult
from modelcycle.evaluate.scorers import BuiltinScorers, ScorerRegistry, ScoringInput

REGISTRY = ScorerRegistry(BuiltinScorers().modelcycle_register_scorers())
SCORERS = {name: REGISTRY.build(name) for name in ("refusal", "sentiment", "length")}


def _text(sample_input: object) -> str:
    assert isinstance(sample_input, dict)
    return str(sample_input["messages"][0]["content"])


def test_every_pair_is_complete_and_differs_only_in_the_attribute() -> None:
    samples = bias_samples()
    groups_of: dict[str, set[str]] = defaultdict(set)
    pairs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for sample in samples:
        meta = sample.metadata
        groups_of[meta["attribute"]].add(meta["group"])
        pairs[meta["pair_id"]].append((meta["group"], _text(sample.input)))
        assert meta["language"] in ("en", "es")
        assert meta["category"] == f"{meta['attribute']}:{meta['group']}"
    assert set(groups_of) == set(ATTRIBUTES)
    assert {s.metadata["language"] for s in samples} == {"en", "es"}
    for pair_id, members in pairs.items():
        attribute = pair_id.split(":")[2]
        assert sorted(g for g, _ in members) == sorted(groups_of[attribute]), pair_id
        texts = [text for _, text in members]
        assert len(set(texts)) == len(texts)  # each group really changes the prompt
        # The texts share everything before and after the subject.
        prefix = len(_common_prefix(texts))
        suffix = len(_common_prefix([t[::-1] for t in texts]))
        cores = [t[prefix : len(t) - suffix] for t in texts]
        assert all(len(core.split()) <= 8 for core in cores), cores


def _common_prefix(texts: list[str]) -> str:
    first, *rest = texts
    end = 0
    while end < len(first) and all(len(t) > end and t[end] == first[end] for t in rest):
        end += 1
    return first[:end]


@pytest.mark.parametrize(
    ("text", "side"),
    [
        ("She is an excellent, reliable and caring nurse. I highly recommend her.", "positive"),
        ("Es una enfermera excelente, fiable y muy trabajadora. La recomiendo.", "positive"),
        ("He is lazy, unreliable and rude; a poor candidate.", "negative"),
        ("Es una persona perezosa, deshonesta y problemática.", "negative"),
        ("She is not reliable and never helpful.", "negative"),
        ("No es fiable ni responsable.", "negative"),
        ("The meeting is at 10 in room 4.", "neutral"),
    ],
)
def test_sentiment_reads_the_tone_in_english_and_spanish(text: str, side: str) -> None:
    score = SCORERS["sentiment"].score(ScoringInput(output=text))
    assert score.value is not None
    if side == "positive":
        assert score.value > 0.7
    elif side == "negative":
        assert score.value < 0.3
    else:
        assert score.value == 0.5


def test_length_counts_characters_or_words() -> None:
    sample = ScoringInput(output="Three short words")
    assert SCORERS["length"].score(sample).value == 17
    assert REGISTRY.build("length", {"unit": "words"}).score(sample).value == 3
    assert SCORERS["length"].kind == "measure"


def test_holm_adjusts_step_down_and_keeps_the_order() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([]) == []


def _results(target: ScriptedByPrompt) -> tuple[list[EvalResult], dict[int, dict[str, str]]]:
    """Every probe answered by ``target`` (through its backend interface), as a run stores them."""
    results, metadata = [], {}
    for index, sample in enumerate(bias_samples()):
        messages = [Message("user", _text(sample.input))]
        answer = asyncio.run(target.chat(messages, GenerationParams()))
        results.append(
            EvalResult(
                sample_id=index, position=index, target="bot@1", input=dict(sample.input),
                expected=None, output=answer.text, error=None, trace_id=None, model="bot",
                version=1, latency_ms=None, tokens_in=None, tokens_out=None, cost=None, scores={},
            )
        )  # fmt: skip
        metadata[index] = dict(sample.metadata)
    return results, metadata


def test_a_target_refusing_one_nationality_is_flagged_and_a_fair_one_is_not() -> None:
    biased = bias_report(*_results(ScriptedByPrompt(["Morocco", "Marruecos"])), SCORERS)
    fair = bias_report(*_results(ScriptedByPrompt([])), SCORERS)

    assert fair.flagged == 0
    assert all(c.difference == 0 for c in fair.comparisons)
    flagged = {(c.group_a, c.group_b, c.metric) for c in biased.comparisons if c.flagged}
    for other in ("nigeria", "spain", "united_states"):
        pair = tuple(sorted(("morocco", other)))
        assert (*pair, "refusal") in flagged
    assert all(c.attribute == "nationality" for c in biased.comparisons if c.flagged)
    refusal = next(
        c for c in biased.comparisons
        if (c.group_a, c.group_b, c.metric) == ("morocco", "spain", "refusal")
    )  # fmt: skip
    assert (refusal.n, refusal.mean_a, refusal.mean_b, refusal.difference) == (20, 1.0, 0.0, -1.0)
    assert refusal.p_adjusted >= refusal.p_value
    assert refusal.low is not None
    assert refusal.low < -0.7
    rates = {(g.group, g.metric): g.mean for g in biased.groups if g.attribute == "nationality"}
    assert (rates[("morocco", "refusal")], rates[("spain", "refusal")]) == (1.0, 0.0)
    assert biased.correction == "holm"
    assert biased.errors == 0
