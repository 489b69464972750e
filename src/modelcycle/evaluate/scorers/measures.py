"""Measures: ``latency`` and ``cost`` pass on what the run measured, in their own units."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from modelcycle.evaluate.scorers.options import ScorerOptions, parse_options
from modelcycle.evaluate.scorers.types import Score, Scorer, ScoringInput


class Latency(Scorer):
    """``latency``: the target's response time for the sample, in milliseconds (lower is better).

    The value is the run's own measurement, unchanged; a sample without one (an
    imported output, say) gets an error, not a 0.
    """

    name = "latency"
    kind = "measure"
    needs_reference = False
    higher_is_better = False

    def score(self, sample: ScoringInput) -> Score:
        """The measured latency."""
        return _measured(self.name, sample.latency_ms, "latency was not measured")


class Cost(Scorer):
    """``cost``: what the target's answer cost, in the deployment's currency (lower is better).

    Computed by the gateway from the tokens used and the deployment's prices; a
    sample without a cost (no price configured) gets an error, not a 0.
    """

    name = "cost"
    kind = "measure"
    needs_reference = False
    higher_is_better = False

    def score(self, sample: ScoringInput) -> Score:
        """The recorded cost."""
        return _measured(
            self.name, sample.cost, "no cost was recorded (does the deployment have prices?)"
        )


def _measured(name: str, value: float | None, missing: str) -> Score:
    if value is None:
        return Score.failed(f"{name}: {missing}")
    if not math.isfinite(value) or value < 0:
        return Score.failed(f"{name}: {value!r} is not a finite number >= 0")
    return Score.of(value)


def build_latency(options: Mapping[str, Any]) -> Scorer:
    """The ``latency`` scorer; it takes no options."""
    parse_options(ScorerOptions, options, Latency.name)
    return Latency()


def build_cost(options: Mapping[str, Any]) -> Scorer:
    """The ``cost`` scorer; it takes no options."""
    parse_options(ScorerOptions, options, Cost.name)
    return Cost()
