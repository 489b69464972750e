"""The evaluation statistics against scipy's reference implementations and textbook numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from modelcycle.errors import InvalidInput
from modelcycle.evaluate import (
    InvalidScores,
    bootstrap_ci,
    mean_ci,
    paired_comparison,
    pass_rate_ci,
    proportion_ci,
)
from modelcycle.evaluate.paired import mcnemar_test, newcombe_interval


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.mean(x - y, axis=axis))


# --- one-sample intervals -------------------------------------------------------------


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_bootstrap_ci_matches_scipy_on_skewed_scores(method: str) -> None:
    scores = np.random.default_rng(7).exponential(0.3, size=40)
    ours = bootstrap_ci(scores, resamples=20_000, seed=1, method=method)  # type: ignore[arg-type]
    theirs = stats.bootstrap(
        (scores,),
        np.mean,
        method="BCa" if method == "bca" else "percentile",
        n_resamples=20_000,
        rng=np.random.default_rng(2),
    ).confidence_interval
    width = theirs.high - theirs.low
    assert ours.method == method
    assert ours.estimate == pytest.approx(scores.mean())
    assert ours.low == pytest.approx(theirs.low, abs=0.05 * width)
    assert ours.high == pytest.approx(theirs.high, abs=0.05 * width)


def test_bca_shifts_the_interval_towards_the_long_tail() -> None:
    scores = np.random.default_rng(3).exponential(1.0, size=30)
    bca = bootstrap_ci(scores, seed=0)
    percentile = bootstrap_ci(scores, seed=0, method="percentile")
    assert bca.high > percentile.high
    assert bca.low > percentile.low


def test_bootstrap_ci_is_deterministic_given_the_seed() -> None:
    scores = np.random.default_rng(0).random(50)
    assert bootstrap_ci(scores, seed=5) == bootstrap_ci(scores, seed=5)
    assert bootstrap_ci(scores, seed=5) != bootstrap_ci(scores, seed=6)


def test_single_value_has_no_interval_and_constant_values_a_point() -> None:
    single = bootstrap_ci([0.7])
    assert single.estimate == 0.7
    assert single.method == "undefined"
    assert not single.defined
    assert "undefined" in single.describe()
    constant = bootstrap_ci([0.5] * 8)
    assert (constant.low, constant.estimate, constant.high) == (0.5, 0.5, 0.5)
    assert constant.method == "constant"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "no scores"),
        ([0.1, float("nan"), 0.3], "scores[1] is nan"),
        ([0.1, math.inf], "scores[1] is inf"),
        (["a", "b"], "must be numbers"),
        ([[0.1, 0.2]], "flat sequence"),
    ],
)
def test_unusable_scores_are_refused_by_name(values: list[object], message: str) -> None:
    with pytest.raises(InvalidScores, match=message.replace("[", r"\[").replace("]", r"\]")) as e:
        bootstrap_ci(values)  # type: ignore[arg-type]
    assert isinstance(e.value, ValueError)
    assert isinstance(e.value, InvalidInput)
    assert e.value.status_code == 400


@pytest.mark.parametrize(("confidence", "resamples"), [(1.0, 1000), (0.0, 1000), (0.95, 10)])
def test_bad_settings_are_refused(confidence: float, resamples: int) -> None:
    with pytest.raises(InvalidInput, match=r"confidence|resamples"):
        bootstrap_ci([0.1, 0.2, 0.3], confidence=confidence, resamples=resamples)


@pytest.mark.parametrize(("passed", "total"), [(0, 10), (1, 10), (8, 10), (10, 10), (37, 120)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_interval_matches_scipy(passed: int, total: int, confidence: float) -> None:
    ours = proportion_ci(passed, total, confidence=confidence)
    theirs = stats.binomtest(passed, total).proportion_ci(confidence, method="wilson")
    assert ours.estimate == passed / total
    assert ours.low == pytest.approx(theirs.low, abs=1e-9)
    assert ours.high == pytest.approx(theirs.high, abs=1e-9)
    assert 0.0 <= ours.low <= ours.high <= 1.0


def test_proportion_ci_refuses_impossible_counts() -> None:
    with pytest.raises(InvalidScores, match="no scores"):
        proportion_ci(0, 0)
    with pytest.raises(InvalidScores, match="between 0 and total"):
        proportion_ci(11, 10)


def test_mean_ci_uses_wilson_for_pass_fail_and_bootstrap_otherwise() -> None:
    assert mean_ci([1, 0, 1, 1, True, False]).method == "wilson"
    assert mean_ci([1.0, 0.5, 0.0, 0.25]).method == "bca"
    assert pass_rate_ci([1, 1, 0, 1]) == proportion_ci(3, 4)
    with pytest.raises(InvalidScores, match=r"scores\[1\] is 0.5: pass/fail"):
        pass_rate_ci([1, 0.5])


def test_bootstrap_ci_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    true_mean = 2 / 7  # Beta(2, 5): bounded, skewed, like many graded scores
    covered = sum(
        bootstrap_ci(rng.beta(2, 5, size=40), resamples=2_000, seed=i).contains(true_mean)
        for i in range(200)
    )
    assert 0.88 <= covered / 200 <= 0.99


def test_wilson_interval_covers_the_true_rate_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(12)
    covered = sum(proportion_ci(int(rng.binomial(50, 0.8)), 50).contains(0.8) for _ in range(200))
    assert 0.88 <= covered / 200 <= 0.995


# --- paired comparison: continuous scores --------------------------------------------


def test_exact_sign_flip_p_value_matches_scipy_permutation_test() -> None:
    rng = np.random.default_rng(4)
    baseline = rng.random(12)
    candidate = baseline + rng.normal(0.1, 0.15, size=12)
    ours = paired_comparison(baseline, candidate)
    theirs = stats.permutation_test(
        (candidate, baseline),
        _mean_difference,
        permutation_type="samples",
        vectorized=True,
        n_resamples=10_000,
        alternative="two-sided",
    )
    assert ours.test == "paired sign-flip permutation test (exact)"
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-12)
    assert ours.statistic == pytest.approx(theirs.statistic)


def test_zero_differences_keep_the_test_exact_on_many_samples() -> None:
    rng = np.random.default_rng(5)
    baseline = rng.random(200)
    candidate = baseline.copy()
    candidate[:10] += rng.normal(0.05, 0.1, size=10)
    ours = paired_comparison(baseline, candidate)
    theirs = stats.permutation_test(
        (candidate[:10], baseline[:10]),
        _mean_difference,
        permutation_type="samples",
        vectorized=True,
        alternative="two-sided",
    )
    assert "exact" in ours.test
    assert ours.ties == 190
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-12)


def test_monte_carlo_permutation_test_agrees_with_the_paired_t_test_on_normal_data() -> None:
    rng = np.random.default_rng(6)
    baseline = rng.random(80)
    candidate = baseline + rng.normal(0.02, 0.1, size=80)
    ours = paired_comparison(baseline, candidate, seed=3)
    assert "Monte Carlo, 10000 permutations" in ours.test
    assert ours.p_value == pytest.approx(stats.ttest_rel(candidate, baseline).pvalue, abs=0.03)
    assert ours == paired_comparison(baseline, candidate, seed=3)


def test_paired_bootstrap_interval_is_that_of_the_differences() -> None:
    rng = np.random.default_rng(8)
    baseline = rng.random(30)
    candidate = np.clip(baseline + rng.normal(-0.05, 0.1, size=30), 0, 1)
    ours = paired_comparison(baseline, candidate, seed=9)
    assert ours.difference == bootstrap_ci(candidate - baseline, seed=9)
    theirs = stats.bootstrap(
        (candidate, baseline),
        _mean_difference,
        paired=True,
        method="BCa",
        n_resamples=10_000,
        rng=np.random.default_rng(1),
    ).confidence_interval
    width = theirs.high - theirs.low
    assert ours.difference.low == pytest.approx(theirs.low, abs=0.05 * width)
    assert ours.difference.high == pytest.approx(theirs.high, abs=0.05 * width)


def test_win_tie_loss_and_effect_sizes_by_hand() -> None:
    baseline = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    candidate = [0.9, 0.7, 0.6, 0.5, 0.4, 0.8]
    result = paired_comparison(baseline, candidate)
    differences = np.array(candidate) - np.array(baseline)
    assert (result.wins, result.ties, result.losses) == (4, 1, 1)
    assert result.superiority == pytest.approx((4 + 0.5) / 6)
    assert result.cohens_dz == pytest.approx(differences.mean() / differences.std(ddof=1))
    moving = differences[np.abs(differences) > 1e-9]
    ranks = stats.rankdata(np.abs(moving))
    expected = (ranks[moving > 0].sum() - ranks[moving < 0].sum()) / ranks.sum()
    assert result.rank_biserial == pytest.approx(expected)
    assert result.candidate_mean == pytest.approx(np.mean(candidate))
    assert result.baseline_mean == 0.5


def test_lower_is_better_flips_wins_but_not_the_signed_difference() -> None:
    baseline, candidate = [100.0, 100.0, 100.0], [80.0, 90.0, 120.0]
    result = paired_comparison(baseline, candidate, higher_is_better=False)
    assert (result.wins, result.ties, result.losses) == (2, 0, 1)
    assert result.difference.estimate == pytest.approx(-10 / 3)


def test_identical_scores_mean_no_difference_at_all() -> None:
    scores = [0.2, 0.9, 0.4, 0.4, 0.7]
    result = paired_comparison(scores, list(scores))
    assert result.p_value == 1.0
    assert (result.wins, result.ties, result.losses) == (0, 5, 0)
    assert result.difference.method == "constant"
    assert result.difference.estimate == 0.0
    assert result.superiority == 0.5
    assert result.cohens_dz == 0.0
    assert result.rank_biserial == 0.0


def test_float_noise_between_equal_scores_is_a_tie() -> None:
    result = paired_comparison([0.1 + 0.2, 0.5], [0.3, 0.5])
    assert result.ties == 2
    assert result.p_value == 1.0


def test_one_sample_gives_p_one_and_no_interval() -> None:
    result = paired_comparison([0.2], [0.6])
    assert result.p_value == 1.0
    assert result.wins == 1
    assert not result.difference.defined
    assert result.cohens_dz is None


def test_a_constant_non_zero_shift_has_no_finite_cohens_d() -> None:
    result = paired_comparison([0.1, 0.2, 0.3], [0.2, 0.3, 0.4])
    assert result.cohens_dz is None
    assert result.rank_biserial == 1.0


@pytest.mark.parametrize(
    ("baseline", "candidate", "kind", "message"),
    [
        ([0.1, 0.2], [0.1], "continuous", "baseline has 2 scores and candidate 1"),
        ([], [], "continuous", "no samples"),
        ([0.1, float("nan")], [0.1, 0.2], "continuous", r"baseline\[1\] is nan"),
        ([1, 0, 0.5], [1, 0, 1], "binary", r"baseline\[2\] is 0.5: pass/fail"),
        ([1, 0], [1, 0], "ordinal", "kind must be"),
    ],
)
def test_unusable_pairs_are_refused(
    baseline: list[float], candidate: list[float], kind: str, message: str
) -> None:
    with pytest.raises(InvalidScores, match=message):
        paired_comparison(baseline, candidate, kind=kind)  # type: ignore[arg-type]


# --- paired comparison: pass/fail scores ---------------------------------------------


def _pairs(
    both: int, only_candidate: int, only_baseline: int, neither: int
) -> tuple[list[int], list[int]]:
    baseline = [1] * both + [0] * only_candidate + [1] * only_baseline + [0] * neither
    candidate = [1] * both + [1] * only_candidate + [0] * only_baseline + [0] * neither
    return baseline, candidate


@pytest.mark.parametrize(("wins", "losses"), [(0, 0), (1, 0), (3, 9), (7, 7), (0, 12), (11, 13)])
def test_exact_mcnemar_matches_scipy_binomtest(wins: int, losses: int) -> None:
    baseline, candidate = _pairs(20, wins, losses, 15)
    result = paired_comparison(baseline, candidate, kind="binary")
    discordant = wins + losses
    expected = 1.0 if discordant == 0 else stats.binomtest(wins, discordant, 0.5).pvalue
    assert result.test == "McNemar's test (exact binomial)"
    assert result.p_value == pytest.approx(expected, rel=1e-12)
    assert (result.wins, result.ties, result.losses) == (wins, 35, losses)


def test_mcnemar_on_agrestis_presidential_approval_table() -> None:
    # Agresti, An Introduction to Categorical Data Analysis (2007), table 8.1:
    # approval of the president in two surveys of the same 1600 people.
    baseline, candidate = _pairs(794, 86, 150, 570)
    result = paired_comparison(baseline, candidate, kind="binary")
    assert result.test == "McNemar's test (chi-squared, continuity-corrected)"
    assert result.statistic == pytest.approx(63**2 / 236)  # 17.36 without the correction
    assert result.p_value == pytest.approx(stats.chi2.sf(63**2 / 236, 1), rel=1e-9)
    assert result.p_value < 0.001
    # Agresti's Wald interval, -0.04 +- 1.96 * 0.0095: Newcombe's agrees at this size.
    assert result.difference.estimate == pytest.approx(-0.04)
    assert result.difference.low == pytest.approx(-0.059, abs=0.002)
    assert result.difference.high == pytest.approx(-0.021, abs=0.002)
    assert result.odds_ratio == pytest.approx(86 / 150)
    assert result.candidate_mean == pytest.approx(880 / 1600)


def test_equal_discordant_counts_give_p_one_in_the_chi_squared_regime() -> None:
    p_value, statistic, test = mcnemar_test(20, 20)
    assert (p_value, statistic) == (1.0, 0.0)
    assert "chi-squared" in test


def test_identical_pass_fail_scores_give_p_one() -> None:
    scores = [1, 0, 1, 1, 0, 1]
    result = paired_comparison(scores, scores, kind="binary")
    assert result.p_value == 1.0
    assert result.difference.estimate == 0.0
    assert result.difference.low < 0 < result.difference.high
    assert result.odds_ratio == 1.0
    assert result.superiority == 0.5


def test_newcombe_interval_on_a_textbook_table() -> None:
    # Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables (2017),
    # chapter 8: complete response before and after consolidation therapy (Cavo et al.).
    interval = newcombe_interval(59, 6, 16, 80, 0.95)
    assert interval.estimate == pytest.approx(-0.0621, abs=5e-5)
    assert interval.low == pytest.approx(-0.1186, abs=5e-5)
    assert interval.high == pytest.approx(-0.0046, abs=5e-5)


def test_newcombe_interval_stays_in_range_and_brackets_the_difference() -> None:
    for cells in [(0, 10, 0, 0), (0, 0, 10, 0), (5, 3, 0, 2), (1, 0, 0, 0), (40, 2, 9, 49)]:
        interval = newcombe_interval(*cells, 0.95)
        assert -1.0 <= interval.low <= interval.estimate <= interval.high <= 1.0
        assert interval.method == "newcombe"


def test_newcombe_interval_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(13)
    cells = np.array([0.55, 0.15, 0.05, 0.25])  # both, only candidate, only baseline, neither
    covered = 0
    for _ in range(200):
        both, only_candidate, only_baseline, neither = (int(c) for c in rng.multinomial(80, cells))
        interval = newcombe_interval(both, only_candidate, only_baseline, neither, 0.95)
        covered += interval.contains(0.10)
    assert 0.88 <= covered / 200 <= 0.995


def test_odds_ratio_is_finite_when_one_side_never_wins() -> None:
    baseline, candidate = _pairs(5, 4, 0, 5)
    assert paired_comparison(baseline, candidate, kind="binary").odds_ratio == pytest.approx(9.0)
