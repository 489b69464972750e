"""Confidence intervals for the aggregate of one scorer over a dataset.

Pure functions on plain numbers (no database, no model, no network). Every
result is a frozen :class:`Interval`, deterministic given its ``seed``. The
normal quantiles come from the standard library, so importing this module
does not pay for ``scipy.stats``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray

from modelcycle.errors import InvalidInput

IntervalMethod = Literal["bca", "percentile", "wilson", "newcombe", "constant", "undefined"]
"""How an interval was computed; ``constant``/``undefined`` name the degenerate cases."""

Scores: TypeAlias = Iterable[float] | NDArray[Any]
"""Per-sample scores: any iterable of numbers (bools count as 0/1)."""

DEFAULT_RESAMPLES = 10_000
_DRAWS_PER_CHUNK = 2_000_000
"""Indices drawn per resampling chunk: memory stays ~16 MB whatever n and resamples are."""
_NORMAL = NormalDist()


class InvalidScores(InvalidInput, ValueError):
    """Scores the statistics cannot use: none, NaN, unaligned, or not 0/1 where pass/fail is due.

    Also a ``ValueError``, so numeric code catches it as it would numpy's; the
    API answers it with a 400 like any ``InvalidInput``.
    """


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate and its two-sided confidence interval.

    ``low`` and ``high`` are NaN (``method="undefined"``) when the data say
    nothing about spread, as with a single value: a zero-width interval would
    claim a certainty that is not there.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    method: IntervalMethod

    @property
    def defined(self) -> bool:
        """Whether the bounds are numbers (not NaN)."""
        return not (math.isnan(self.low) or math.isnan(self.high))

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies within the bounds (False when they are undefined)."""
        return self.defined and self.low <= value <= self.high

    def describe(self) -> str:
        """The interval as people read it: ``[95% CI 0.38, 0.44]``."""
        label = f"{self.confidence * 100:g}% CI"
        if not self.defined:
            return f"[{label} undefined]"
        return f"[{label} {format_number(self.low)}, {format_number(self.high)}]"


def format_number(value: float) -> str:
    """Three significant digits, without exponent noise for everyday magnitudes."""
    if math.isnan(value):
        return "nan"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def as_scores(values: Scores, *, name: str = "scores") -> NDArray[np.float64]:
    """``values`` as a flat float array, refusing NaN, infinities and non-numbers by name.

    A NaN usually means a sample whose scorer errored: it must be left out of
    the aggregate (and counted as an error) before any statistic sees it.
    """
    raw = values if isinstance(values, np.ndarray) else list(values)
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidScores(f"{name} must be numbers: {exc}", param=name) from exc
    if array.ndim != 1:
        raise InvalidScores(
            f"{name} must be a flat sequence of numbers, got shape {array.shape}", param=name
        )
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise InvalidScores(
            f"{name}[{bad[0]}] is {array[bad[0]]} ({bad.size} non-finite in all): leave samples "
            "whose scorer errored out of the statistics instead of scoring them NaN",
            param=name,
        )
    return array


def is_pass_fail(scores: NDArray[np.float64]) -> bool:
    """Whether every score is 0 or 1, i.e. the scorer judged pass/fail."""
    return bool(np.all((scores == 0.0) | (scores == 1.0)))


def as_pass_fail(values: Scores, *, name: str = "scores") -> NDArray[np.float64]:
    """``values`` as a 0/1 array, refusing any other value by position."""
    scores = as_scores(values, name=name)
    other = np.flatnonzero((scores != 0.0) & (scores != 1.0))
    if other.size:
        raise InvalidScores(
            f"{name}[{other[0]}] is {scores[other[0]]:g}: pass/fail statistics need scores of "
            "0 or 1; use the continuous statistics for graded scores",
            param=name,
        )
    return scores


def check_settings(confidence: float, resamples: int | None = None) -> None:
    """Refuse a confidence level outside (0, 1) or too few resamples to place a quantile."""
    if not 0.0 < confidence < 1.0:
        raise InvalidInput(
            f"confidence must lie between 0 and 1 (0.95 for 95%), got {confidence}",
            param="confidence",
        )
    if resamples is not None and resamples < 100:
        raise InvalidInput(
            f"resamples must be at least 100 (10000 is the default), got {resamples}",
            param="resamples",
        )


def bootstrap_ci(
    values: Scores,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    method: Literal["bca", "percentile"] = "bca",
) -> Interval:
    """The mean of ``values`` with a nonparametric bootstrap confidence interval.

    ``bca`` (the default) is Efron's bias-corrected and accelerated interval:
    percentile bounds shifted for the bootstrap distribution's median bias
    (ties counted half) and for skew (the jackknife acceleration). It covers
    closer to the nominal level than plain ``percentile`` on skewed scores; it
    falls back to ``percentile`` where the bias correction is infinite (every
    resample on one side of the mean), and says so in ``method``.

    Degenerate data are answered without resampling: one value gives undefined
    bounds, constant values a zero-width interval (``method="constant"``). No
    values, NaN or non-numbers raise :class:`InvalidScores`.
    """
    scores = as_scores(values)
    check_settings(confidence, resamples)
    if scores.size == 0:
        raise InvalidScores("no scores: a confidence interval needs at least one value")
    estimate = float(scores.mean())
    if scores.size == 1:
        return Interval(estimate, math.nan, math.nan, confidence, 1, "undefined")
    if np.ptp(scores) == 0:
        return Interval(estimate, estimate, estimate, confidence, scores.size, "constant")
    means = resampled_means(scores, resamples, np.random.default_rng(seed))
    alpha = (1.0 - confidence) / 2.0
    levels: tuple[float, float] = (alpha, 1.0 - alpha)
    used: IntervalMethod = "percentile"
    if method == "bca":
        adjusted = _bca_levels(scores, means, estimate, levels)
        if adjusted is not None:
            levels, used = adjusted, "bca"
    low, high = np.quantile(means, levels)
    return Interval(estimate, float(low), float(high), confidence, scores.size, used)


def resampled_means(
    scores: NDArray[np.float64], resamples: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """The means of ``resamples`` bootstrap resamples of ``scores``, drawn in bounded chunks."""
    size = scores.size
    rows = max(1, _DRAWS_PER_CHUNK // size)
    means = np.empty(resamples)
    for start in range(0, resamples, rows):
        stop = min(start + rows, resamples)
        picks = rng.integers(0, size, size=(stop - start, size))
        means[start:stop] = scores[picks].mean(axis=1)
    return means


def _bca_levels(
    scores: NDArray[np.float64],
    means: NDArray[np.float64],
    estimate: float,
    levels: tuple[float, float],
) -> tuple[float, float] | None:
    """BCa-adjusted quantile levels, or None where the correction is undefined."""
    below = np.count_nonzero(means < estimate) + 0.5 * np.count_nonzero(means == estimate)
    share = float(below) / means.size
    if not 0.0 < share < 1.0:
        return None
    bias = _NORMAL.inv_cdf(share)
    # Jackknife of the mean in closed form: leave-one-out means.
    leave_one_out = (scores.sum() - scores) / (scores.size - 1)
    spread = leave_one_out.mean() - leave_one_out
    scale = 6.0 * float(np.sum(spread**2)) ** 1.5
    acceleration = float(np.sum(spread**3)) / scale if scale > 0 else 0.0
    adjusted = []
    for level in levels:
        z = bias + _NORMAL.inv_cdf(level)
        denominator = 1.0 - acceleration * z
        if denominator <= 0:
            return None
        adjusted.append(_NORMAL.cdf(bias + z / denominator))
    return adjusted[0], adjusted[1]


def proportion_ci(passed: int, total: int, *, confidence: float = 0.95) -> Interval:
    """A pass rate ``passed / total`` with its Wilson score interval.

    Wilson's interval keeps close to nominal coverage for small ``total`` and
    rates near 0 or 1, where the textbook Wald interval collapses to a point;
    its bounds never leave [0, 1].
    """
    check_settings(confidence)
    if total <= 0:
        raise InvalidScores("no scores: a pass rate needs at least one judged sample")
    if not 0 <= passed <= total:
        raise InvalidScores(f"passed must lie between 0 and total ({total}), got {passed}")
    z = _NORMAL.inv_cdf(0.5 + confidence / 2.0)
    rate = passed / total
    shrink = 1.0 + z * z / total
    centre = (rate + z * z / (2 * total)) / shrink
    half = z * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total)) / shrink
    # At 0 or all passes the bound is exactly the rate; floating point leaves ~1e-17.
    low = 0.0 if passed == 0 else max(0.0, centre - half)
    high = 1.0 if passed == total else min(1.0, centre + half)
    return Interval(rate, low, high, confidence, total, "wilson")


def pass_rate_ci(values: Scores, *, confidence: float = 0.95) -> Interval:
    """The pass rate of 0/1 ``values`` with its Wilson interval (see :func:`proportion_ci`)."""
    scores = as_pass_fail(values)
    return proportion_ci(int(scores.sum()), scores.size, confidence=confidence)


def mean_ci(
    values: Scores,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The aggregate a run reports for one scorer: Wilson for pass/fail, BCa bootstrap otherwise.

    Pass/fail scores (every value 0 or 1) get the Wilson interval, which is
    exact enough and free; graded scores get :func:`bootstrap_ci`.
    """
    scores = as_scores(values)
    if scores.size and is_pass_fail(scores):
        return proportion_ci(int(scores.sum()), scores.size, confidence=confidence)
    return bootstrap_ci(scores, confidence=confidence, resamples=resamples, seed=seed)
