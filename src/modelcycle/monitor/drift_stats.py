"""The statistical tests of drift checks, on plain arrays (no database, no model).

Each test returns an effect size *and* a p-value: a metric drifts only when the
change is both significant and large enough to matter, so that a big window
does not flag a trivial shift and a small one does not flag noise.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelcycle.errors import MissingExtra

PSI_BINS = 10
PSI_FLOOR = 1e-4
"""Share given to an empty bin, so that PSI stays finite."""
PERMUTATIONS = 200
MMD_MAX_PER_SIDE = 500
CV_FOLDS = 5


@dataclass(frozen=True, slots=True)
class TestResult:
    """What one test found: the effect, its p-value, and evidence for people."""

    statistic: float
    p_value: float | None
    evidence: dict[str, Any] = field(default_factory=dict)


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0


def psi(reference: Sequence[float], current: Sequence[float]) -> tuple[float, dict[str, Any]]:
    """Population stability index over the reference's deciles, and the bins."""
    ref, cur = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, PSI_BINS + 1)))
    inner = edges[1:-1]
    ref_share = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=len(inner) + 1)
    cur_share = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=len(inner) + 1)
    r = np.maximum(ref_share / len(ref), PSI_FLOOR)
    c = np.maximum(cur_share / len(cur), PSI_FLOOR)
    value = float(np.sum((c - r) * np.log(c / r)))
    bins = {
        "edges": [round(float(e), 3) for e in edges],
        "reference_share": [round(float(x), 4) for x in ref_share / len(ref)],
        "current_share": [round(float(x), 4) for x in cur_share / len(cur)],
    }
    return value, bins


def numeric_shift(reference: Sequence[float], current: Sequence[float]) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test with PSI as the effect size."""
    from scipy import stats  # lazy: scipy.stats costs ~2 s of start-up

    ks = stats.ks_2samp(reference, current)
    value, bins = psi(reference, current)
    ref, cur = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    evidence = {
        "ks_statistic": round(float(ks.statistic), 4),
        "psi": round(value, 4),
        "reference_mean": round(float(ref.mean()), 2),
        "current_mean": round(float(cur.mean()), 2),
        "reference_median": float(np.median(ref)),
        "current_median": float(np.median(cur)),
        "histogram": bins,
    }
    return TestResult(value, _finite(float(ks.pvalue)), evidence)


def category_shift(reference: Sequence[str], current: Sequence[str]) -> TestResult:
    """Chi-squared test of a 2 x K table, with total variation distance as the effect."""
    from scipy import stats  # lazy: scipy.stats costs ~2 s of start-up

    ref, cur = Counter(reference), Counter(current)
    categories = sorted(set(ref) | set(cur))
    ref_share = {c: ref[c] / len(reference) for c in categories}
    cur_share = {c: cur[c] / len(current) for c in categories}
    distance = 0.5 * sum(abs(cur_share[c] - ref_share[c]) for c in categories)
    p_value = 1.0
    if len(categories) > 1:
        table = np.array([[ref[c] for c in categories], [cur[c] for c in categories]])
        p_value = float(stats.chi2_contingency(table).pvalue)
    changes = sorted(categories, key=lambda c: -abs(cur_share[c] - ref_share[c]))
    evidence = {
        "total_variation": round(distance, 4),
        "reference_share": {c: round(ref_share[c], 4) for c in categories},
        "current_share": {c: round(cur_share[c], 4) for c in categories},
        "largest_changes": [
            {"category": c, "change": round(cur_share[c] - ref_share[c], 4)} for c in changes[:5]
        ],
    }
    return TestResult(distance, _finite(p_value), evidence)


def rate_shift(ref_hits: int, ref_n: int, cur_hits: int, cur_n: int) -> TestResult:
    """Two-proportion z-test (two-sided); the effect is the absolute change of the rate."""
    from scipy import stats  # lazy: scipy.stats costs ~2 s of start-up

    ref_rate, cur_rate = ref_hits / ref_n, cur_hits / cur_n
    pooled = (ref_hits + cur_hits) / (ref_n + cur_n)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / ref_n + 1 / cur_n))
    p_value = 1.0 if spread == 0 else float(2 * stats.norm.sf(abs(cur_rate - ref_rate) / spread))
    evidence = {
        "reference_rate": round(ref_rate, 4),
        "current_rate": round(cur_rate, 4),
        "reference_hits": ref_hits,
        "current_hits": cur_hits,
    }
    return TestResult(abs(cur_rate - ref_rate), p_value, evidence)


def score_shift(reference: Sequence[float], current: Sequence[float]) -> TestResult:
    """Mann-Whitney U test (two-sided); the effect is the absolute change of the mean."""
    from scipy import stats  # lazy: scipy.stats costs ~2 s of start-up

    ref, cur = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    p_value = 1.0
    if np.ptp(np.concatenate([ref, cur])) > 0:
        p_value = float(stats.mannwhitneyu(ref, cur, alternative="two-sided").pvalue)
    evidence = {
        "reference_mean": round(float(ref.mean()), 4),
        "current_mean": round(float(cur.mean()), 4),
    }
    return TestResult(abs(float(cur.mean() - ref.mean())), _finite(p_value), evidence)


def classifier_auc(
    reference: NDArray[np.float32], current: NDArray[np.float32], *, seed: int = 0
) -> tuple[TestResult, NDArray[np.float64]]:
    """Domain classifier: can a model tell current rows from reference rows?

    Logistic regression, ``CV_FOLDS``-fold cross-validated; the effect is the
    ROC AUC of its out-of-fold scores (0.5: indistinguishable, Evidently flags
    above 0.55) and the p-value that of the matching Mann-Whitney test (the AUC
    is its U statistic, normalised). Also returns each current row's score.
    """
    from scipy import stats  # lazy: scipy.stats costs ~2 s of start-up

    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
    except ImportError as exc:
        raise MissingExtra("scikit-learn", "embed") from exc
    rows = np.vstack([reference, current])
    labels = np.concatenate([np.zeros(len(reference)), np.ones(len(current))])
    folds = min(CV_FOLDS, len(reference), len(current))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(
        LogisticRegression(max_iter=1000), rows, labels, cv=splitter, method="decision_function"
    )
    ref_scores, cur_scores = scores[: len(reference)], scores[len(reference) :]
    test = stats.mannwhitneyu(cur_scores, ref_scores, alternative="greater")
    auc = float(test.statistic) / (len(cur_scores) * len(ref_scores))
    return TestResult(auc, _finite(float(test.pvalue)), {"roc_auc": round(auc, 4)}), cur_scores


def mmd_test(
    reference: NDArray[np.float32], current: NDArray[np.float32], *, seed: int = 0
) -> TestResult:
    """Unbiased MMD² with an RBF kernel (median heuristic) and a permutation p-value."""
    rng = np.random.default_rng(seed)
    ref = _at_most(reference, MMD_MAX_PER_SIDE, rng)
    cur = _at_most(current, MMD_MAX_PER_SIDE, rng)
    rows = np.vstack([ref, cur]).astype(np.float64)
    squared = np.maximum(
        (rows**2).sum(1)[:, None] + (rows**2).sum(1)[None, :] - 2 * rows @ rows.T, 0.0
    )
    off_diagonal = squared[np.triu_indices(len(rows), k=1)]
    bandwidth = float(np.median(off_diagonal)) or 1.0
    kernel = np.exp(-squared / bandwidth)
    np.fill_diagonal(kernel, 0.0)
    m, n = len(ref), len(cur)
    labels = np.concatenate([np.ones(m), np.zeros(n)])
    permuted = np.stack([rng.permutation(labels) for _ in range(PERMUTATIONS)], axis=1)
    observed = _mmd2(kernel, labels[:, None], m, n)[0]
    null = _mmd2(kernel, permuted, m, n)
    p_value = (1 + int(np.sum(null >= observed))) / (1 + PERMUTATIONS)
    evidence = {
        "mmd2": round(float(observed), 6),
        "bandwidth": round(bandwidth, 4),
        "permutations": PERMUTATIONS,
        "samples_per_side": [m, n],
    }
    return TestResult(float(observed), p_value, evidence)


def _mmd2(kernel: NDArray[np.float64], x_mask: NDArray[np.float64], m: int, n: int) -> Any:
    """MMD² for each column of ``x_mask`` (1 marks the first sample), diagonal excluded."""
    y_mask = 1.0 - x_mask
    kx = kernel @ x_mask
    xx = np.sum(x_mask * kx, axis=0)
    xy = np.sum(y_mask * kx, axis=0)
    yy = np.sum(y_mask * (kernel @ y_mask), axis=0)
    return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n)


def _at_most(
    rows: NDArray[np.float32], limit: int, rng: np.random.Generator
) -> NDArray[np.float32]:
    if len(rows) <= limit:
        return rows
    return rows[rng.choice(len(rows), size=limit, replace=False)]
