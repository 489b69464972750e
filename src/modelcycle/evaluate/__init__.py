"""Evaluation: scoring targets on datasets, with real statistics and quality gates.

Its top level exports the statistics: every aggregate comes with a
confidence interval (:func:`mean_ci`); two targets scored on the same samples
are compared sample by sample (:func:`paired_comparison`: win/tie/loss,
effect size, p-value); and a ``--gate`` expression (:func:`parse_gate`,
:func:`evaluate_gate`) turns those numbers into a verdict with its reason.
"""

from modelcycle.evaluate.gates import Gate, GateResult, evaluate_gate, parse_gate
from modelcycle.evaluate.paired import PairedComparison, paired_comparison
from modelcycle.evaluate.statistics import (
    Interval,
    InvalidScores,
    bootstrap_ci,
    mean_ci,
    pass_rate_ci,
    proportion_ci,
)

__all__ = [
    "Gate",
    "GateResult",
    "Interval",
    "InvalidScores",
    "PairedComparison",
    "bootstrap_ci",
    "evaluate_gate",
    "mean_ci",
    "paired_comparison",
    "parse_gate",
    "pass_rate_ci",
    "proportion_ci",
]
