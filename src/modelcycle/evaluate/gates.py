"""Quality gates: a threshold on a run's aggregate, or on its paired difference from a baseline.

The syntax is the CLI's ``--gate`` (and the automation stage's) one::

    exact_match>=0.8                                  the mean (here: pass rate)
    mean(rouge_l)>0.3                                 the same, spelled out
    pass_rate(json_valid)>=95%                        pass/fail scores only
    delta(rouge_l, baseline=NAME@production)>=0 p<0.05

Operators are ``>=``, ``>``, ``<=``, ``<`` and ``==``; a number may end in
``%``. ``delta`` is the mean per-sample difference candidate - baseline.
Without a p clause a delta gate holds when the difference meets the bound.
With ``p<`` (or ``p<=``) it is a regression gate: it fails only when the
difference misses the bound AND the paired test's p-value (of "no
difference") is below the level — a regression the data shows, not noise;
a candidate that merely matches its baseline passes. The reason says which
number failed and why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
from numpy.typing import NDArray

from modelcycle.errors import InvalidInput
from modelcycle.evaluate.paired import PairedComparison, paired_comparison
from modelcycle.evaluate.statistics import (
    DEFAULT_RESAMPLES,
    Interval,
    InvalidScores,
    Scores,
    as_scores,
    format_number,
    is_pass_fail,
    mean_ci,
    pass_rate_ci,
)

Aggregate = Literal["mean", "pass_rate", "delta"]
Operator = Literal[">=", ">", "<=", "<", "=="]

FUNCTIONS: dict[str, Aggregate] = {
    "mean": "mean",
    "avg": "mean",
    "pass_rate": "pass_rate",
    "pass": "pass_rate",
    "rate": "pass_rate",
    "accuracy": "pass_rate",
    "delta": "delta",
}
"""Gate functions by the names users may write (the pass-rate aliases included)."""

EXAMPLES = (
    "'exact_match>=0.8', 'mean(rouge_l)>0.3' or "
    "'delta(rouge_l, baseline=NAME@production)>=0 p<0.05'"
)

_SPACE = re.compile(r"\s*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_TARGET = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/@\-]*")
_OPERATOR = re.compile(r">=|<=|==|>|<")
_P_OPERATOR = re.compile(r"<=|<")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?%?")


@dataclass(frozen=True, slots=True)
class Gate:
    """One parsed gate: ``aggregate(metric) op threshold [p p_op max_p]``.

    Attributes:
        metric: the scorer whose scores the gate reads.
        aggregate: ``mean`` (pass rate for 0/1 scores), ``pass_rate`` (0/1
            scores required) or ``delta`` (candidate - baseline, paired).
        op: how the aggregate compares with ``threshold``.
        threshold: the bound (``80%`` is stored as 0.8).
        baseline: delta only: the baseline target as written (``NAME@alias``,
            ``NAME@VERSION`` or a deployment); None lets the caller use the
            run's own baseline.
        p_op: delta only: ``<`` or ``<=`` when a p-value bound is set.
        max_p: delta only: the p-value bound, in (0, 1].
    """

    metric: str
    aggregate: Aggregate
    op: Operator
    threshold: float
    baseline: str | None = None
    p_op: Literal["<", "<="] | None = None
    max_p: float | None = None

    def __str__(self) -> str:
        """The gate in canonical syntax, parseable again."""
        inside = self.metric + (f", baseline={self.baseline}" if self.baseline else "")
        text = f"{self.aggregate}({inside}){self.op}{_written(self.threshold)}"
        if self.max_p is not None:
            text += f" p{self.p_op}{_written(self.max_p)}"
        return text


@dataclass(frozen=True, slots=True)
class GateResult:
    """Whether a gate held, and the numbers behind the verdict.

    Attributes:
        gate: the gate checked.
        passed: whether every condition of the gate held.
        reason: one line for people: the value, its interval (and p-value),
            then what it ``meets`` or what it ``needs``.
        value: the aggregate the threshold was compared with.
        interval: that aggregate with its confidence interval.
        p_value: delta gates only: the paired test's p-value.
        comparison: delta gates only: the full paired comparison.
    """

    gate: Gate
    passed: bool
    reason: str
    value: float
    interval: Interval
    p_value: float | None = None
    comparison: PairedComparison | None = None


def _written(value: float) -> str:
    """A bound as the user would write it: short, yet exact enough to parse back."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


class _Cursor:
    """Reads a gate left to right, raising errors that name the column and the expected form."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def error(self, expected: str) -> InvalidInput:
        rest = self.text[self.pos :]
        found = f"found {rest!r}" if rest else "found the end"
        return InvalidInput(
            f"invalid gate {self.text!r}: at column {self.pos + 1}, expected {expected}, "
            f"{found}. Gates look like {EXAMPLES}",
            param="gate",
        )

    def skip_space(self) -> None:
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]

    def take(self, pattern: re.Pattern[str], expected: str) -> str:
        self.skip_space()
        match = pattern.match(self.text, self.pos)
        if match is None or not match.group():
            raise self.error(expected)
        self.pos = match.end()
        return match.group()

    def accept(self, literal: str) -> bool:
        self.skip_space()
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            return True
        return False

    def expect(self, literal: str, expected: str) -> None:
        if not self.accept(literal):
            raise self.error(expected)

    def at_end(self) -> bool:
        self.skip_space()
        return self.pos == len(self.text)

    def number(self, expected: str) -> float:
        written = self.take(_NUMBER, expected)
        value = float(written.rstrip("%"))
        return value / 100.0 if written.endswith("%") else value


def parse_gate(text: str) -> Gate:
    """Parse one gate expression; malformed ones raise :class:`InvalidInput` naming the column."""
    cursor = _Cursor(text)
    cursor.skip_space()
    start = cursor.pos
    name = cursor.take(_NAME, "a metric name or mean(...), pass_rate(...), delta(...)")
    aggregate: Aggregate = "mean"
    metric, baseline = name, None
    if cursor.accept("("):
        if name not in FUNCTIONS:
            cursor.pos = start
            raise cursor.error(f"one of the functions {', '.join(FUNCTIONS)}")
        aggregate = FUNCTIONS[name]
        metric = cursor.take(_NAME, "the metric name inside the parentheses")
        if aggregate == "delta" and cursor.accept(","):
            cursor.expect("baseline", "'baseline=TARGET' after the comma")
            cursor.expect("=", "'=' after 'baseline'")
            baseline = cursor.take(_TARGET, "the baseline target, e.g. NAME@production")
        closing = "',' or ')'" if aggregate == "delta" and baseline is None else "')'"
        cursor.expect(")", closing)
    op = cast(Operator, cursor.take(_OPERATOR, "a comparison: >=, >, <=, < or =="))
    threshold = cursor.number("a number after the comparison, e.g. 0.8 or 80%")
    p_op, max_p = _parse_p_clause(cursor, aggregate)
    if not cursor.at_end():
        raise cursor.error("the end of the gate (or a 'p<0.05' clause on a delta gate)")
    return Gate(metric, aggregate, op, threshold, baseline, p_op, max_p)


def _parse_p_clause(
    cursor: _Cursor, aggregate: Aggregate
) -> tuple[Literal["<", "<="] | None, float | None]:
    if cursor.at_end():
        return None, None
    comma = cursor.accept(",")
    if not cursor.accept("p"):
        if comma:
            raise cursor.error("a 'p<0.05' clause after the comma")
        raise cursor.error("the end of the gate (or a 'p<0.05' clause on a delta gate)")
    if aggregate != "delta":
        cursor.pos -= 1
        raise cursor.error("the end of the gate: a p-value bound applies to delta(...) gates only")
    p_op = cast(Literal["<", "<="], cursor.take(_P_OPERATOR, "'<' or '<=' after 'p'"))
    cursor.skip_space()
    bound = cursor.pos
    max_p = cursor.number("a p-value bound, e.g. 0.05")
    if not 0.0 < max_p <= 1.0:
        cursor.pos = bound
        raise cursor.error("a p-value bound between 0 and 1")
    return p_op, max_p


def _holds(value: float, op: Operator, bound: float) -> bool:
    if op == "==":
        return math.isclose(value, bound, rel_tol=1e-9, abs_tol=1e-12)
    return {
        ">=": value >= bound,
        ">": value > bound,
        "<=": value <= bound,
        "<": value < bound,
    }[op]


def _scores_for(gate: Gate, scores: Mapping[str, Scores], side: str) -> NDArray[np.float64]:
    if gate.metric not in scores:
        known = ", ".join(sorted(scores)) or "none"
        raise InvalidInput(
            f"gate '{gate}': the {side} has no scores named {gate.metric!r} (it has: {known})",
            param="gate",
        )
    values = as_scores(scores[gate.metric], name=f"{side} {gate.metric}")
    if values.size == 0:
        raise InvalidScores(
            f"gate '{gate}': the {side} has no {gate.metric} scores (every sample errored?)",
            param="gate",
        )
    return values


def evaluate_gate(
    gate: Gate,
    scores: Mapping[str, Scores],
    baseline_scores: Mapping[str, Scores] | None = None,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> GateResult:
    """Check ``gate`` against per-sample ``scores`` by metric name.

    Delta gates also need ``baseline_scores``: the baseline's scores on the
    same samples in the same order (the caller resolves ``gate.baseline``).
    Pass/fail scores (all 0/1 on both sides) are compared with McNemar's
    test, graded ones with the paired permutation test.
    """
    if gate.aggregate != "delta":
        values = _scores_for(gate, scores, "run")
        if gate.aggregate == "pass_rate":
            interval = pass_rate_ci(values, confidence=confidence)
        else:
            interval = mean_ci(values, confidence=confidence, resamples=resamples, seed=seed)
        passed = _holds(interval.estimate, gate.op, gate.threshold)
        label = f"{gate.aggregate}({gate.metric})"
        verdict = f"{'meets' if passed else 'needs'} {gate.op} {_written(gate.threshold)}"
        reason = (
            f"{label} = {format_number(interval.estimate)} {interval.describe()}, "
            f"n = {interval.n}: {verdict}"
        )
        return GateResult(gate, passed, reason, interval.estimate, interval)
    if baseline_scores is None:
        raise InvalidInput(
            f"gate '{gate}' compares with a baseline: run the evaluation with that baseline "
            "as a second target",
            param="gate",
        )
    base = _scores_for(gate, baseline_scores, "baseline")
    cand = _scores_for(gate, scores, "candidate")
    binary = is_pass_fail(base) and is_pass_fail(cand)
    comparison = paired_comparison(
        base,
        cand,
        kind="binary" if binary else "continuous",
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )
    return _delta_result(gate, comparison)


def _delta_result(gate: Gate, comparison: PairedComparison) -> GateResult:
    """A delta gate; with a p clause it fails only on a *significant* violation.

    ``delta(m)>=0 p<0.05`` reads "the candidate must not be worse than the
    baseline, judged at the 5% level": a CI job fails on a regression the data
    shows, not on noise, and a candidate that merely matches its baseline passes.
    Without a p clause the point estimate alone decides.
    """
    difference = comparison.difference
    value_ok = _holds(difference.estimate, gate.op, gate.threshold)
    condition = f"{gate.op} {_written(gate.threshold)}"
    versus = f" vs {gate.baseline}" if gate.baseline else ""
    head = (
        f"delta({gate.metric}{versus}) = {format_number(difference.estimate)} "
        f"{difference.describe()}, p = {format_number(comparison.p_value)}, n = {comparison.n}"
    )
    if value_ok:
        passed, verdict = True, f"meets {condition}"
    elif gate.max_p is None:
        passed, verdict = False, f"needs {condition}"
    else:
        p_clause = f"p {gate.p_op or '<'} {_written(gate.max_p)}"
        significant = _holds(comparison.p_value, gate.p_op or "<", gate.max_p)
        passed = not significant
        verdict = (
            f"misses {condition} with {p_clause}: a significant regression"
            if significant
            else f"misses {condition} but not significantly (a failure needs {p_clause})"
        )
    return GateResult(
        gate,
        passed,
        f"{head}: {verdict}",
        difference.estimate,
        difference,
        comparison.p_value,
        comparison,
    )
