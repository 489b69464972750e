"""Gate expressions as users write them on the CLI, and the verdicts they read back."""

from __future__ import annotations

import numpy as np
import pytest

from modelcycle.errors import InvalidInput
from modelcycle.evaluate import Gate, InvalidScores, evaluate_gate, parse_gate, proportion_ci


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("exact_match>=0.8", Gate("exact_match", "mean", ">=", 0.8)),
        ("mean(rouge_l)>0.3", Gate("rouge_l", "mean", ">", 0.3)),
        ("  avg( rouge_l ) > .3 ", Gate("rouge_l", "mean", ">", 0.3)),
        ("pass_rate(json_valid)>=95%", Gate("json_valid", "pass_rate", ">=", 0.95)),
        ("accuracy(exact_match)<0.5", Gate("exact_match", "pass_rate", "<", 0.5)),
        ("rate(refusal)<=2%", Gate("refusal", "pass_rate", "<=", 0.02)),
        ("pass(json_valid)==1", Gate("json_valid", "pass_rate", "==", 1.0)),
        ("latency<=1.5e3", Gate("latency", "mean", "<=", 1500.0)),
        (
            "delta(rouge_l, baseline=chat@production)>=0 p<0.05",
            Gate("rouge_l", "delta", ">=", 0.0, "chat@production", "<", 0.05),
        ),
        (
            "delta( rouge_l , baseline = org/chat-7b@3 ) >= -0.01 , p <= 0.1",
            Gate("rouge_l", "delta", ">=", -0.01, "org/chat-7b@3", "<=", 0.1),
        ),
        ("delta(llm_judge.helpful)>0", Gate("llm_judge.helpful", "delta", ">", 0.0)),
    ],
)
def test_gates_parse_as_written(text: str, expected: Gate) -> None:
    gate = parse_gate(text)
    assert gate == expected
    assert parse_gate(str(gate)) == gate


def test_canonical_text_reads_like_the_cli_syntax() -> None:
    gate = parse_gate("delta(rouge_l, baseline=chat@production)>=0 p<0.05")
    assert str(gate) == "delta(rouge_l, baseline=chat@production)>=0 p<0.05"
    assert str(parse_gate("exact_match>=80%")) == "mean(exact_match)>=0.8"


@pytest.mark.parametrize(
    ("text", "column", "expected"),
    [
        ("", 1, "a metric name"),
        ("exact_match", 12, "a comparison"),
        ("exact_match=>0.8", 12, "a comparison"),
        ("exact_match>=", 14, "a number after the comparison"),
        ("exact_match>=high", 14, "a number after the comparison"),
        ("median(rouge_l)>0.3", 1, "one of the functions mean, avg, pass_rate"),
        ("mean()>0.3", 6, "the metric name inside the parentheses"),
        ("mean(rouge_l>0.3", 13, "')'"),
        ("delta(rouge_l baseline=x)>=0", 15, "',' or ')'"),
        ("delta(rouge_l, base=x)>=0", 16, "'baseline=TARGET'"),
        ("delta(rouge_l, baseline=)>=0", 25, "the baseline target"),
        ("exact_match>=0.8 extra", 18, "the end of the gate"),
        ("mean(rouge_l)>0.3 p<0.05", 19, "the end of the gate: a p-value bound applies to delta"),
        ("delta(rouge_l)>=0 p>0.05", 20, "'<' or '<=' after 'p'"),
        ("delta(rouge_l)>=0 p<5", 21, "a p-value bound between 0 and 1"),
        ("delta(rouge_l)>=0 p<", 21, "a p-value bound"),
    ],
)
def test_malformed_gates_name_the_column_and_the_expected_form(
    text: str, column: int, expected: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_gate(text)
    message = str(caught.value)
    assert f"at column {column}, expected {expected}" in message
    assert "Gates look like 'exact_match>=0.8'" in message
    assert caught.value.status_code == 400
    assert caught.value.param == "gate"


def test_mean_gate_reports_the_rate_with_its_interval() -> None:
    scores = {"exact_match": [1, 1, 1, 1, 0, 1, 1, 0, 1, 1]}
    result = evaluate_gate(parse_gate("exact_match>=0.8"), scores)
    wilson = proportion_ci(8, 10)
    assert result.passed
    assert result.value == 0.8
    assert result.interval == wilson
    assert result.reason == "mean(exact_match) = 0.8 [95% CI 0.49, 0.943], n = 10: meets >= 0.8"
    failed = evaluate_gate(parse_gate("exact_match>0.8"), scores)
    assert not failed.passed
    assert failed.reason.endswith(": needs > 0.8")


def test_graded_mean_gate_uses_the_bootstrap() -> None:
    scores = {"rouge_l": [0.2, 0.35, 0.4, 0.1, 0.5, 0.3]}
    result = evaluate_gate(parse_gate("mean(rouge_l)>0.3"), scores, seed=1)
    assert result.passed
    assert result.interval.method == "bca"
    assert result.reason.startswith("mean(rouge_l) = 0.308 [95% CI ")
    assert result == evaluate_gate(parse_gate("mean(rouge_l)>0.3"), scores, seed=1)


def test_pass_rate_gate_refuses_graded_scores() -> None:
    with pytest.raises(InvalidScores, match="pass/fail statistics need scores of 0 or 1"):
        evaluate_gate(parse_gate("pass_rate(rouge_l)>0.3"), {"rouge_l": [0.2, 1.0]})


def test_a_gate_on_a_missing_metric_lists_the_ones_there_are() -> None:
    with pytest.raises(
        InvalidInput, match=r"no scores named 'bleu' \(it has: exact_match, rouge_l\)"
    ):
        evaluate_gate(parse_gate("bleu>0.2"), {"rouge_l": [0.1], "exact_match": [1]})


def _regression(size: int, shift: float, seed: int) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    baseline = rng.uniform(0.2, 0.8, size=size)
    candidate = baseline + shift + rng.normal(0.0, 0.05, size=size)
    return baseline.tolist(), candidate.tolist()


def test_delta_gate_fails_a_regression_and_says_which_number() -> None:
    baseline, candidate = _regression(60, -0.03, seed=1)
    gate = parse_gate("delta(rouge_l, baseline=chat@production)>=0 p<0.05")
    result = evaluate_gate(gate, {"rouge_l": candidate}, {"rouge_l": baseline})
    assert not result.passed
    assert result.value < 0
    assert result.comparison is not None
    assert result.p_value == result.comparison.p_value
    assert result.reason.startswith("delta(rouge_l vs chat@production) = -0.0")
    assert "[95% CI -0.0" in result.reason
    assert result.p_value is not None
    assert result.p_value < 0.05
    assert result.reason.endswith(": misses >= 0 with p < 0.05: a significant regression")


def test_delta_gate_passes_a_drop_the_data_cannot_tell_from_noise() -> None:
    baseline = [0.5] * 6
    candidate = [0.45, 0.52, 0.48, 0.55, 0.47, 0.49]
    result = evaluate_gate(
        parse_gate("delta(rouge_l)>=0 p<0.05"), {"rouge_l": candidate}, {"rouge_l": baseline}
    )
    assert result.value < 0
    assert result.p_value is not None
    assert result.p_value >= 0.05
    assert result.passed  # a CI gate fails on a regression the data shows, not on noise
    assert result.reason.endswith(": misses >= 0 but not significantly (a failure needs p < 0.05)")
    # Without the p clause the point estimate alone decides.
    strict = evaluate_gate(
        parse_gate("delta(rouge_l)>=0"), {"rouge_l": candidate}, {"rouge_l": baseline}
    )
    assert not strict.passed
    assert strict.reason.endswith(": needs >= 0")


def test_delta_gate_passes_a_candidate_that_matches_its_baseline() -> None:
    baseline, candidate = _regression(8, 0.005, seed=2)
    result = evaluate_gate(
        parse_gate("delta(rouge_l)>=0 p<0.05"), {"rouge_l": candidate}, {"rouge_l": baseline}
    )
    assert result.value > 0
    assert result.p_value is not None
    assert result.p_value > 0.05
    assert result.passed
    assert result.reason.endswith(": meets >= 0")


def test_delta_gate_passes_a_clear_improvement() -> None:
    baseline, candidate = _regression(40, 0.05, seed=3)
    result = evaluate_gate(
        parse_gate("delta(rouge_l)>=0 p<0.05"), {"rouge_l": candidate}, {"rouge_l": baseline}
    )
    assert result.passed
    assert result.reason.endswith(": meets >= 0")


def test_delta_gate_on_pass_fail_scores_uses_mcnemar() -> None:
    baseline = [1] * 30 + [0] * 10 + [1] * 2 + [0] * 8
    candidate = [1] * 30 + [1] * 10 + [0] * 2 + [0] * 8
    result = evaluate_gate(
        parse_gate("delta(exact_match)>0 p<=0.05"),
        {"exact_match": candidate},
        {"exact_match": baseline},
    )
    assert result.comparison is not None
    assert result.comparison.test == "McNemar's test (exact binomial)"
    assert result.interval.method == "newcombe"
    assert result.value == pytest.approx(8 / 50)
    assert result.passed


def test_delta_gate_needs_the_baseline_scores() -> None:
    gate = parse_gate("delta(rouge_l, baseline=chat@production)>=0")
    with pytest.raises(InvalidInput, match="compares with a baseline"):
        evaluate_gate(gate, {"rouge_l": [0.1, 0.2]})
    with pytest.raises(InvalidScores, match="baseline has 3 scores and candidate 2"):
        evaluate_gate(gate, {"rouge_l": [0.1, 0.2]}, {"rouge_l": [0.1, 0.2, 0.3]})


def test_lower_bound_gates_on_cost_style_metrics() -> None:
    scores = {"latency": [120.0, 140.0, 130.0, 2000.0]}
    result = evaluate_gate(parse_gate("latency<=500"), scores)
    assert not result.passed
    assert result.reason.startswith("mean(latency) = 598 [95% CI ")
    assert result.reason.endswith(": needs <= 500")
