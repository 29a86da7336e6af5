"""audit.stats: every nominal 95% interval covers the truth 93-97% of the time in simulated studies
(t-interval over seeds, Wilson, the two-level bootstrap, the prediction interval), TOST's false
"reproduced" rate stays at 5% at the margin (Welch's TOST: at its exact size, which the power
integral gives, at most 5% with Hsu's degrees of freedom for every variance ratio and pair of group
sizes), each function agrees with scipy and with hand-worked values, the same rng seed gives the
same interval, and undefined cases give NaN with a warning."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from audit.stats import (
    Interval,
    McNemar,
    StatsWarning,
    difference_interval,
    expected_best_of_n,
    holm,
    mcnemar_exact,
    paired_bootstrap_examples,
    paired_difference,
    prediction_interval,
    probability_of_improvement,
    seeds_needed,
    seeds_needed_difference,
    seeds_needed_welch,
    seeds_needed_welch_test,
    t_interval,
    t_test,
    tost_one_sample,
    tost_paired,
    tost_power,
    tost_welch,
    tost_welch_power,
    two_level_bootstrap,
    welch_difference,
    welch_test,
    welch_test_power,
    wilson,
)

STUDIES = 4000  # simulated studies per coverage check: Monte-Carlo SE of a 95% rate is 0.34 points
TOST_STUDIES = 2000  # each TOST costs ~1.3 ms (three scipy calls); SE of a 5% rate is 0.49 points
# Welch TOST studies are decided by the formula vectorised over studies (`welch_tost_by_hand`, shown
# equal to `tost_welch` on the first WELCH_CHECKED of them): SE of a 5% rate is 0.15 points
WELCH_STUDIES = 20_000
WELCH_CHECKED = 200
CUB_TEST_IMAGES = 5794


def rate_of(hits) -> float:
    return float(np.mean(hits))


# ---------------------------------------------------------------------------------------------
# Coverage by simulation (seeded: the same figures every run)


def t_interval_coverage(seed: int = 0) -> float:
    """5 seeds drawn N(0.917, 0.0025); does the 95% t-interval hold 0.917?"""
    rng = np.random.default_rng(seed)
    runs = rng.normal(0.917, 0.0025, size=(STUDIES, 5))
    return rate_of([t_interval(r).contains(0.917) for r in runs])


def prediction_interval_coverage(seed: int = 1) -> float:
    """5 seeds and one new run, all N(0.917, 0.0025); does the interval hold the new run?"""
    rng = np.random.default_rng(seed)
    runs = rng.normal(0.917, 0.0025, size=(STUDIES, 6))
    return rate_of([prediction_interval(r[:5]).contains(r[5]) for r in runs])


def wilson_coverage(n: int, p: float, seed: int = 2) -> float:
    """Studies of one run scoring Binomial(n, p); the interval depends on k alone, so it is
    computed once per distinct k and counted for every study that drew that k."""
    k, studies = np.unique(np.random.default_rng(seed).binomial(n, p, size=STUDIES),
                           return_counts=True)
    covers = np.array([wilson(int(one_k), n).contains(p) for one_k in k])
    return float(np.sum(studies * covers) / STUDIES)


def two_level_coverage(seed_sd: float, studies: int, seed: int = 3, n: int = 1000,
                       p: float = 0.9, seeds: int = 5) -> float:
    """Simulated studies of `seeds` runs, each run scored on its own n test examples.

    Assumes: a seed's true accuracy is N(p, seed_sd) (training randomness); its test examples are
    independent Bernoulli(true accuracy) (test-set sampling, SE sqrt(p(1-p)/n) = 0.0095 here); the
    truth is p, the mean accuracy over seeds and test sets. n and n_resamples are modest for speed.
    """
    rng = np.random.default_rng(seed)
    hits = []
    for _ in range(studies):
        true_accuracy = rng.normal(p, seed_sd, size=seeds)
        correct = list(rng.random((seeds, n)) < true_accuracy[:, None])  # (seeds, n)
        hits.append(two_level_bootstrap(correct, rng, n_resamples=1000).contains(p))
    return rate_of(hits)


def test_t_interval_covers_the_true_mean_of_five_seeds():
    assert 0.93 <= t_interval_coverage() <= 0.97


def test_prediction_interval_covers_a_new_run():
    assert 0.93 <= prediction_interval_coverage() <= 0.97


@pytest.mark.parametrize(("n", "p"), [(CUB_TEST_IMAGES, 0.917), (200, 0.85)])
def test_wilson_covers_the_true_accuracy(n, p):
    assert 0.93 <= wilson_coverage(n, p) <= 0.97


def test_two_level_bootstrap_covers_when_seed_and_test_noise_are_comparable():
    # seed SD 0.0095 equals the test-set SE: the regime where the bootstrap's double-counted
    # within-seed noise offsets its short between-seed spread (see the docstring)
    assert 0.93 <= two_level_coverage(seed_sd=0.0095, studies=2000) <= 0.97


def test_two_level_bootstrap_coverage_drifts_with_the_noise_ratio_as_documented():
    # fewer studies (1000, SE 0.7 points) and bands clear of 95%: this pins the direction only
    assert two_level_coverage(seed_sd=0.0, studies=1000, seed=4) >= 0.96  # test noise only
    assert two_level_coverage(seed_sd=0.03, studies=1000, seed=5) <= 0.92  # seed noise dominates


# ---------------------------------------------------------------------------------------------
# TOST: size at the margin, power inside it


def tost_rate(true_mean: float, n: int = 5, sd: float = 0.0025, seed: int = 6,
              studies: int = TOST_STUDIES) -> float:
    """Share of studies of n seeds N(true_mean, sd) that TOST calls equivalent to 0.917 +- 0.005."""
    rng = np.random.default_rng(seed)
    runs = rng.normal(true_mean, sd, size=(studies, n))
    return rate_of([tost_one_sample(r, 0.917, 0.005).equivalent for r in runs])


@pytest.mark.parametrize("offset", [0.005, -0.005])
def test_tost_false_reproduced_rate_is_at_most_alpha_at_the_margin(offset):
    # The exact size at the margin is 0.04999..., so a Monte-Carlo rate lands on either side of 5%
    # by chance: ask that it is not significantly above 5% (one-sided binomial test, 0.1%).
    false_reproduced = round(tost_rate(0.917 + offset) * TOST_STUDIES)
    excess = stats.binomtest(false_reproduced, TOST_STUDIES, 0.05, alternative="greater")
    assert excess.pvalue > 1e-3
    assert tost_power(5, 0.0025, 0.005, difference=offset) <= 0.05


def test_tost_has_power_well_inside_the_margin():
    rate = tost_rate(0.917, studies=1000)
    assert rate >= 0.9
    assert rate == pytest.approx(tost_power(5, 0.0025, 0.005), abs=0.03)


def test_tost_equivalent_exactly_when_the_90_percent_interval_is_inside_the_margin():
    rng = np.random.default_rng(7)
    for _ in range(200):
        values = rng.normal(0.917 + rng.uniform(-0.006, 0.006), 0.0025, size=5)
        result = tost_one_sample(values, 0.917, 0.005)
        inside = 0.912 < result.ci.low and result.ci.high < 0.922
        assert result.equivalent == inside
        assert result.ci.level == pytest.approx(0.90)


# ---------------------------------------------------------------------------------------------
# Against scipy and hand-worked values

SEEDS = np.array([0.9152, 0.9171, 0.9188, 0.9135, 0.9166])


@pytest.mark.parametrize("level", [0.90, 0.95, 0.99])
def test_t_interval_matches_scipy(level):
    got = t_interval(SEEDS, level)
    ref = stats.ttest_1samp(SEEDS, 0.0).confidence_interval(level)
    assert (got.low, got.high) == pytest.approx((ref.low, ref.high), rel=1e-12)
    assert got.estimate == pytest.approx(SEEDS.mean())
    assert got.level == level


def test_difference_interval_is_the_t_interval_shifted_by_the_target():
    got = difference_interval(SEEDS, 0.917)
    ref = stats.ttest_1samp(SEEDS, 0.917).confidence_interval(0.95)
    assert (got.low, got.high) == pytest.approx((ref.low - 0.917, ref.high - 0.917), abs=1e-12)
    assert got.estimate == pytest.approx(SEEDS.mean() - 0.917)


def test_prediction_interval_hand_worked():
    # mean 0.92, s = 0.0158114, t(0.975, 4) = 2.7764451, sqrt(1 + 1/5) = 1.0954451
    got = prediction_interval([0.90, 0.91, 0.92, 0.93, 0.94])
    half = 2.7764451 * 0.0158114 * 1.0954451
    assert (got.estimate, got.low, got.high) == pytest.approx((0.92, 0.92 - half, 0.92 + half),
                                                              abs=1e-6)


def test_wilson_matches_scipy_and_the_cub_figure_in_the_spec():
    k = round(0.917 * CUB_TEST_IMAGES)  # 5313
    got = wilson(k, CUB_TEST_IMAGES)
    ref = stats.binomtest(k, CUB_TEST_IMAGES).proportion_ci(0.95, method="wilson")
    assert (got.low, got.high) == (ref.low, ref.high)
    assert (got.low, got.high) == pytest.approx((0.9096, 0.9238), abs=5e-5)
    assert got.estimate == k / CUB_TEST_IMAGES


def test_wilson_hand_formula_small_n():
    # centre (k + z^2/2) / (n + z^2), half-width z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4)
    k, n, z = 17, 20, stats.norm.ppf(0.975)
    centre = (k + z**2 / 2) / (n + z**2)
    half = z / (n + z**2) * math.sqrt(k * (n - k) / n + z**2 / 4)
    got = wilson(k, n)
    assert (got.low, got.high) == pytest.approx((centre - half, centre + half), rel=1e-9)


def test_tost_one_sample_p_value_is_the_larger_of_two_scipy_one_sided_tests():
    lower = stats.ttest_1samp(SEEDS, 0.917 - 0.005, alternative="greater").pvalue
    upper = stats.ttest_1samp(SEEDS, 0.917 + 0.005, alternative="less").pvalue
    got = tost_one_sample(SEEDS, 0.917, 0.005)
    assert got.p_value == pytest.approx(max(lower, upper), rel=1e-12)
    assert got.equivalent == (max(lower, upper) < 0.05)
    assert got.delta == 0.005
    ci = stats.ttest_1samp(SEEDS, 0.0).confidence_interval(0.90)
    assert (got.ci.low, got.ci.high) == pytest.approx((ci.low, ci.high), rel=1e-12)


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_t_test_matches_scipy_ttest_1samp(alternative):
    for null in (0.912, 0.9162, 0.92):
        ref = stats.ttest_1samp(SEEDS, null, alternative=alternative).pvalue
        assert t_test(SEEDS, null, alternative) == pytest.approx(ref, rel=1e-12)


def test_tost_paired_matches_scipy_ttest_rel():
    a = SEEDS
    b = np.array([0.9160, 0.9165, 0.9170, 0.9150, 0.9180])
    delta = 0.003
    lower = stats.ttest_rel(a + delta, b, alternative="greater").pvalue
    upper = stats.ttest_rel(a - delta, b, alternative="less").pvalue
    assert tost_paired(a, b, delta).p_value == pytest.approx(max(lower, upper), rel=1e-9)


def test_paired_difference_matches_scipy_ttest_rel():
    b = np.array([0.9160, 0.9165, 0.9170, 0.9150, 0.9180])
    got = paired_difference(SEEDS, b)
    ref = stats.ttest_rel(SEEDS, b).confidence_interval(0.95)
    assert (got.low, got.high) == pytest.approx((ref.low, ref.high), rel=1e-9)
    assert got.estimate == pytest.approx(np.mean(SEEDS - b))


def test_mcnemar_matches_scipy_binomtest_and_a_hand_value():
    a = np.array([1] * 10 + [0] * 2 + [1] * 50 + [0] * 8)
    b = np.array([0] * 10 + [1] * 2 + [1] * 50 + [0] * 8)
    got = mcnemar_exact(a, b)
    assert (got.a_only, got.b_only) == (10, 2)
    assert got.p_value == stats.binomtest(10, 12, 0.5).pvalue
    assert got.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)  # 2 P(X <= 2), X ~ Bin(12, 1/2)


def test_mcnemar_without_discordant_examples_is_one():
    same = np.array([1, 0, 1, 1], dtype=bool)
    assert mcnemar_exact(same, same) == McNemar(1.0, 0, 0)


def test_paired_bootstrap_examples_is_scipy_bca_on_the_same_resamples():
    rng = np.random.default_rng(8)
    a = rng.random(600) < 0.9
    b = np.where(rng.random(600) < 0.1, ~a, a)
    got = paired_bootstrap_examples(a, b, np.random.default_rng(9), n_resamples=500)
    ref = stats.bootstrap((a.astype(float), b.astype(float)),
                          lambda x, y, axis: x.mean(axis) - y.mean(axis), paired=True,
                          vectorized=True, n_resamples=500, method="BCa", batch=500,
                          rng=np.random.default_rng(9)).confidence_interval
    assert (got.low, got.high) == pytest.approx((ref.low, ref.high), rel=1e-12)
    assert got.estimate == pytest.approx(a.mean() - b.mean())
    # and about the normal approximation of a paired difference of proportions
    se = np.std(a.astype(float) - b, ddof=1) / np.sqrt(a.size)
    assert got.high - got.low == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_probability_of_improvement_counts_wins_and_half_ties():
    rng = np.random.default_rng(10)
    assert probability_of_improvement([3, 4], [1, 2], rng).estimate == 1.0
    assert probability_of_improvement([1, 2, 3], [2, 2], rng).estimate == 0.5  # 0 0 .5 .5 1 1
    a, b = rng.normal(1, 1, size=29), np.round(rng.normal(0, 1, size=29), 1)
    u = stats.mannwhitneyu(a, b).statistic
    assert probability_of_improvement(a, b, rng).estimate == pytest.approx(u / (29 * 29))


def test_probability_of_improvement_interval_is_scipy_percentile_bootstrap():
    rng = np.random.default_rng(11)
    a, b = rng.normal(1, 1, size=10), rng.normal(0, 1, size=12)

    def p_improvement(x, y, axis):
        x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
        return ((x[..., :, None] > y[..., None, :])
                + 0.5 * (x[..., :, None] == y[..., None, :])).mean(axis=(-2, -1))

    ref = stats.bootstrap((a, b), p_improvement, vectorized=True, n_resamples=800,
                          method="percentile", batch=500,
                          rng=np.random.default_rng(12)).confidence_interval
    got = probability_of_improvement(a, b, np.random.default_rng(12), n_resamples=800)
    assert (got.low, got.high) == pytest.approx((ref.low, ref.high), rel=1e-12)


def test_two_level_bootstrap_estimate_and_sanity_of_width():
    rng = np.random.default_rng(13)
    correct = [rng.random(2000) < p for p in (0.90, 0.91, 0.92)]
    got = two_level_bootstrap(correct, rng)
    assert got.estimate == pytest.approx(np.mean([c.mean() for c in correct]))
    assert got.low < got.estimate < got.high
    assert got.high - got.low < 0.05


def test_holm_hand_worked():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, 1*0.04 = 0.02, 0.03, 0.06, 0.04;
    # running maximum makes the last 0.06
    got = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02])


def test_holm_skips_nan_and_caps_at_one():
    got = holm([0.01, np.nan, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, np.nan, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    assert holm([]).shape == (0,)
    assert np.isnan(holm([np.nan])).all()
    with pytest.raises(ValueError, match="lie in"):
        holm([0.2, 1.5])


def test_expected_best_of_n_known_values():
    values = [0.90, 0.91, 0.92]  # mean 0.91, sd 0.01
    assert expected_best_of_n(values, 1) == pytest.approx(0.91)
    # E[max of 2 N(0,1)] = 1/sqrt(pi), E[max of 3] = 3 / (2 sqrt(pi))
    assert expected_best_of_n(values, 2) == pytest.approx(0.91 + 0.01 / math.sqrt(math.pi))
    assert expected_best_of_n(values, 3) == pytest.approx(0.91 + 0.015 / math.sqrt(math.pi))


@pytest.mark.parametrize("n", [5, 20])
def test_expected_best_of_n_matches_monte_carlo(n):
    mean, sd = SEEDS.mean(), SEEDS.std(ddof=1)
    draws = np.random.default_rng(14).normal(mean, sd, size=(200_000, n)).max(axis=1)
    se = draws.std() / math.sqrt(draws.size)
    assert abs(expected_best_of_n(SEEDS, n) - draws.mean()) < 4 * se


# ---------------------------------------------------------------------------------------------
# Power and seeds needed


def test_seeds_needed_for_tost_matches_the_spec_range():
    # docs/statistics.md, "Seeds needed": about 4-5 seeds for seed SD 0.2-0.3 points and
    # delta 0.5 points
    assert [seeds_needed(sd, 0.005) for sd in (0.002, 0.0025, 0.003)] == [4, 4, 5]


def test_seeds_needed_reaches_the_requested_power_in_simulation():
    n = seeds_needed(0.0025, 0.005, difference=0.001, power=0.8)
    assert tost_rate(0.918, n=n, seed=15) >= 0.8 - 3 * math.sqrt(0.8 * 0.2 / TOST_STUDIES)
    assert tost_rate(0.918, n=n - 1, seed=16) < 0.8  # and one seed fewer does not


def test_tost_power_is_exact_where_the_noncentral_t_bound_is_loose():
    # With 3 seeds and a wide SD the two one-sided tests often fail together (they share s), so
    # P1 + P2 - 1 from the noncentral t is far below the truth; the exact integral is not.
    n, sd, delta = 3, 0.004, 0.005
    df, c, se = n - 1, stats.t.ppf(0.95, n - 1), sd / math.sqrt(n)
    bound = stats.nct.sf(c, df, delta / se) + stats.nct.cdf(-c, df, -delta / se) - 1
    exact = float(tost_power(n, sd, delta))
    rate = tost_rate(0.917, n=n, sd=sd, seed=17)
    assert abs(rate - exact) < 4 * math.sqrt(exact * (1 - exact) / TOST_STUDIES)
    assert bound < exact - 0.2
    # and in the CUB regime the bound is tight: both are the same power
    df, c, se = 4, stats.t.ppf(0.95, 4), 0.0025 / math.sqrt(5)
    bound = stats.nct.sf(c, df, 0.005 / se) + stats.nct.cdf(-c, df, -0.005 / se) - 1
    assert float(tost_power(5, 0.0025, 0.005)) == pytest.approx(bound, abs=0.002)


def test_seeds_needed_can_be_two():
    # a seed SD a tenth of the margin: two seeds already decide, and no fewer are ever proposed
    assert seeds_needed(0.0005, 0.005) == 2
    assert seeds_needed_difference(0.001, 0.01) == 2


def test_seeds_needed_is_none_outside_the_margin_or_beyond_max_n():
    assert seeds_needed(0.0025, 0.005, difference=0.005) is None
    assert seeds_needed(0.0025, 0.005, difference=-0.006) is None
    assert seeds_needed(0.01, 0.005, difference=0.0045, max_n=50) is None


def test_seeds_needed_difference_is_the_smallest_n_with_noncentral_t_power():
    n = seeds_needed_difference(0.003, 0.003)

    def power(k):
        return stats.nct.sf(stats.t.ppf(0.95, k - 1), k - 1, 0.003 * math.sqrt(k) / 0.003)

    assert power(n) >= 0.8 > power(n - 1)
    # simulated one-sided paired t-tests at n pairs reject about 80% of the time
    diffs = np.random.default_rng(18).normal(0.003, 0.003, size=(STUDIES, n))
    p = stats.ttest_1samp(diffs, 0.0, axis=1, alternative="greater").pvalue
    assert rate_of(p < 0.05) == pytest.approx(power(n), abs=0.025)


# ---------------------------------------------------------------------------------------------
# Welch's TOST: runs that do not pair by seed (the official code against a port)

OURS = SEEDS  # 5 runs of a port
OFFICIAL = np.array([0.9121, 0.9204, 0.9187])  # 3 official runs, a wider spread


def welch_tost_by_hand(a, b, delta: float, alpha: float = 0.05, df: str = "hsu"):
    """Welch's TOST from its formula, over the last axis: (p-value, 90% interval low, high).

    se^2 = s_a^2 / n_a + s_b^2 / n_b, nu = min(n_a, n_b) - 1 (Hsu) or, with df "satterthwaite",
    nu = se^4 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1)),
    p = max(P(t_nu > (D + delta) / se), P(t_nu < (D - delta) / se)), D = mean(a) - mean(b).
    """
    n_a, n_b = a.shape[-1], b.shape[-1]
    var_a, var_b = a.var(axis=-1, ddof=1) / n_a, b.var(axis=-1, ddof=1) / n_b
    se = np.sqrt(var_a + var_b)
    nu = (var_a + var_b) ** 2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1)) \
        if df == "satterthwaite" else min(n_a, n_b) - 1
    d = a.mean(axis=-1) - b.mean(axis=-1)
    p = np.maximum(stats.t.sf((d + delta) / se, nu), stats.t.cdf((d - delta) / se, nu))
    half = stats.t.ppf(1 - alpha, nu) * se
    return p, d - half, d + half


def welch_tost_rate(difference: float, delta: float, seed: int, n_a: int = 5, n_b: int = 3,
                    sd_a: float = 0.003, sd_b: float = 0.008, df: str = "hsu") -> float:
    """Share of WELCH_STUDIES studies (n_a runs N(difference, sd_a), n_b runs N(0, sd_b)) that
    Welch's TOST calls equivalent within +- delta; the default SDs are 0.3 and 0.8 points."""
    rng = np.random.default_rng(seed)
    a = rng.normal(difference, sd_a, size=(WELCH_STUDIES, n_a))
    b = rng.normal(0.0, sd_b, size=(WELCH_STUDIES, n_b))
    p, _, _ = welch_tost_by_hand(a, b, delta, df=df)
    checked = [tost_welch(a[i], b[i], delta, df=df).p_value for i in range(WELCH_CHECKED)]
    np.testing.assert_allclose(checked, p[:WELCH_CHECKED], rtol=1e-9)  # the rate is tost_welch's
    return rate_of(p < 0.05)


@pytest.mark.parametrize("df", ["hsu", "satterthwaite"])
def test_tost_welch_is_the_two_one_sided_welch_t_tests_by_hand(df):
    for delta in (0.003, 0.005, 0.01, 0.015):
        p, low, high = welch_tost_by_hand(OURS, OFFICIAL, delta, df=df)
        got = tost_welch(OURS, OFFICIAL, delta, df=df)
        assert got.p_value == pytest.approx(p, rel=1e-12)
        assert got.equivalent == (p < 0.05)
        assert (got.ci.low, got.ci.high) == pytest.approx((low, high), rel=1e-12)
        assert got.ci.estimate == pytest.approx(OURS.mean() - OFFICIAL.mean(), rel=1e-12)
        assert (got.ci.level, got.delta) == (pytest.approx(0.90), delta)
    assert tost_welch(OURS, OFFICIAL, 0.003, df=df).p_value > 0.05  # both sides of the decision
    assert tost_welch(OURS, OFFICIAL, 0.015, df=df).p_value < 0.05
    if df == "satterthwaite":  # scipy's Welch tests, shifted by the margin
        lower = stats.ttest_ind(OURS + 0.005, OFFICIAL, equal_var=False, alternative="greater")
        upper = stats.ttest_ind(OURS - 0.005, OFFICIAL, equal_var=False, alternative="less")
        assert tost_welch(OURS, OFFICIAL, 0.005, df=df).p_value == pytest.approx(
            max(lower.pvalue, upper.pvalue), rel=1e-12)


def test_welch_difference_is_the_welch_interval_by_hand():
    _, low, high = welch_tost_by_hand(OURS, OFFICIAL, 0.0, alpha=0.025)  # (1 - 2 alpha) = 95%
    got = welch_difference(OURS, OFFICIAL)
    assert (got.low, got.high) == pytest.approx((low, high), rel=1e-12)
    assert got.estimate == pytest.approx(OURS.mean() - OFFICIAL.mean())
    # Hsu's interval (min(5, 3) - 1 = 2 degrees of freedom) is wider than the Welch-Satterthwaite
    # one, which is scipy's ttest_ind(equal_var=False) interval; both wider than Student's
    satterthwaite = welch_difference(OURS, OFFICIAL, df="satterthwaite")
    ref = stats.ttest_ind(OURS, OFFICIAL, equal_var=False).confidence_interval(0.95)
    assert (satterthwaite.low, satterthwaite.high) == pytest.approx((ref.low, ref.high),
                                                                    rel=1e-12)
    pooled = stats.ttest_ind(OURS, OFFICIAL, equal_var=True).confidence_interval(0.95)
    assert got.high - got.low > satterthwaite.high - satterthwaite.low > \
        pooled.high - pooled.low


@pytest.mark.parametrize("df", ["hsu", "satterthwaite"])
@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_welch_test_is_the_one_sided_welch_t_test(df, alternative):
    for margin in (-0.004, 0.0, 0.003):
        got = welch_test(OURS, OFFICIAL, margin, alternative, df)
        # by hand: the one-sided tail of the TOST's statistic; and scipy's for Satterthwaite
        se = math.sqrt(OURS.var(ddof=1) / 5 + OFFICIAL.var(ddof=1) / 3)
        t = (OURS.mean() - OFFICIAL.mean() - margin) / se
        nu = 2 if df == "hsu" else stats.ttest_ind(OURS, OFFICIAL, equal_var=False).df
        ref = stats.t.sf(t, nu) if alternative == "greater" else stats.t.cdf(t, nu)
        assert got == pytest.approx(ref, rel=1e-12)
        if df == "satterthwaite":
            scipy_p = stats.ttest_ind(OURS - margin, OFFICIAL, equal_var=False,
                                      alternative=alternative).pvalue
            assert got == pytest.approx(scipy_p, rel=1e-12)


def test_tost_welch_against_a_constant_group_is_the_one_sample_tost():
    # s_b = 0 leaves se = s_a / sqrt(n_a): with Satterthwaite's nu = n_a - 1 it is the one-sample
    # TOST against mean(b); Hsu's rule keeps min(n_a, n_b) - 1 = 2 degrees of freedom (it cannot
    # tell a constant group from one whose spread the runs missed): the same statistic, a larger p
    ref = tost_one_sample(OURS, 0.917, 0.005)
    got = tost_welch(OURS, [0.917] * 3, 0.005, df="satterthwaite")
    assert got.p_value == pytest.approx(ref.p_value, rel=1e-12)
    assert (got.ci.low, got.ci.high) == pytest.approx((ref.ci.low - 0.917, ref.ci.high - 0.917),
                                                      abs=1e-12)
    d, se = OURS.mean() - 0.917, OURS.std(ddof=1) / math.sqrt(5)
    hsu = tost_welch(OURS, [0.917] * 3, 0.005)
    by_hand = max(stats.t.sf((d + 0.005) / se, 2), stats.t.cdf((d - 0.005) / se, 2))
    assert hsu.p_value == pytest.approx(by_hand, rel=1e-12) and hsu.p_value > ref.p_value
    # the power integral in that limit is tost_power's (up to the quadrature, ~2e-5); Hsu's too
    # where the constant group is not the smaller one
    for n, sd in [(3, 0.004), (5, 0.0025), (8, 0.003)]:
        for df, n_b in [("satterthwaite", 4), ("hsu", n)]:
            assert float(tost_welch_power(n, n_b, sd, 0.0, 0.005, df=df)) == pytest.approx(
                float(tost_power(n, sd, 0.005)), abs=1e-4)
    assert [seeds_needed_welch(sd, 0.0, 0.005) for sd in (0.002, 0.0025, 0.003)] == \
        [seeds_needed(sd, 0.005) for sd in (0.002, 0.0025, 0.003)] == [4, 4, 5]


def test_tost_welch_equivalent_exactly_when_the_90_percent_interval_is_inside_the_margin():
    rng = np.random.default_rng(21)
    for _ in range(200):
        a = rng.normal(rng.uniform(-0.006, 0.006), 0.003, size=5)
        result = tost_welch(a, rng.normal(0.0, 0.008, size=3), 0.01)
        assert result.equivalent == (-0.01 < result.ci.low and result.ci.high < 0.01)


@pytest.mark.parametrize(("delta", "seed"), [(0.005, 22), (0.02, 23)])
def test_welch_tost_false_reproduced_rate_at_the_margin_is_its_exact_size(delta, seed):
    # 5 runs of SD 0.3 points against 3 of SD 0.8, true difference exactly at the margin: the
    # simulated rate is the exact size from the power integral within 4 Monte-Carlo SEs, and not
    # significantly above alpha (one-sided binomial test, 0.1%). Hsu's size is 0.6% at a margin
    # of 0.5 points and 3.4% at 2; Welch-Satterthwaite's would be 1.8% and 5.6%.
    size = float(tost_welch_power(5, 3, 0.003, 0.008, delta, difference=delta))
    assert size == pytest.approx(float(tost_welch_power(5, 3, 0.003, 0.008, delta, -delta)))
    se = math.sqrt(size * (1 - size) / WELCH_STUDIES)
    for offset, study_seed in [(delta, seed), (-delta, seed + 100)]:
        false_reproduced = welch_tost_rate(offset, delta, study_seed)
        assert abs(false_reproduced - size) < 4 * se
        count = round(false_reproduced * WELCH_STUDIES)
        excess = stats.binomtest(count, WELCH_STUDIES, 0.05, alternative="greater")
        assert excess.pvalue > 1e-3
    assert size <= 0.05
    satterthwaite = float(tost_welch_power(5, 3, 0.003, 0.008, delta, delta, df="satterthwaite"))
    assert satterthwaite <= 0.05 if delta == 0.005 else 0.05 < satterthwaite <= 0.06
    if delta == 0.02:  # and the simulation sees Satterthwaite's excess too
        rate = welch_tost_rate(delta, delta, seed + 200, df="satterthwaite")
        assert abs(rate - satterthwaite) < 4 * math.sqrt(satterthwaite * (1 - satterthwaite)
                                                          / WELCH_STUDIES)


SIZE_GROUPS = np.array([2, 3, 4, 5, 7, 10, 20])  # runs per group, each paired with each
SIZE_RATIOS = [0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0, math.inf]  # sd_b / sd_a


@pytest.mark.parametrize("ratio", SIZE_RATIOS)
def test_welch_with_hsu_df_never_exceeds_alpha_for_any_variance_ratio_or_group_sizes(ratio):
    # The exact size of the one-sided Welch test (what each of the TOST's tests does alone, its
    # largest size at a margin wide enough) on every pair of group sizes 2..20: at most 5% with
    # Hsu's degrees of freedom [Mickey and Brown 1966]; Welch-Satterthwaite's reaches 8.2%
    # (20 runs against 2 of the same SD). And the TOST's size at the margin, for margins of
    # 0.5, 1 and 4 standard errors of the difference, at most 5% too.
    sd_a, sd_b = (1.0, ratio) if math.isfinite(ratio) else (0.0, 1.0)
    n_a, n_b = np.meshgrid(SIZE_GROUPS, SIZE_GROUPS, indexing="ij")
    hsu = welch_test_power(n_a, n_b, sd_a, sd_b, 0.0)
    assert hsu.max() <= 0.05 + 1e-9  # the quadrature's error, where the bound is attained
    tau = np.sqrt(sd_a**2 / n_a + sd_b**2 / n_b)
    for k in (0.5, 1.0, 4.0):
        for i, j in itertools.product(range(len(SIZE_GROUPS)), repeat=2):
            delta = k * tau[i, j]
            size = tost_welch_power(n_a[i, j], n_b[i, j], sd_a, sd_b, delta, delta)
            assert size <= 0.05 + 1e-4
    satterthwaite = welch_test_power(n_a, n_b, sd_a, sd_b, 0.0, df="satterthwaite")
    if ratio == 1.0:
        assert satterthwaite.max() == pytest.approx(0.0819, abs=5e-4)


@pytest.mark.parametrize(("n_a", "n_b", "sd_a", "sd_b", "seed"), [
    (5, 3, 0.003, 0.008, 40), (10, 3, 0.003, 0.003, 41), (3, 10, 0.008, 0.003, 42),
    (2, 20, 0.003, 0.003, 43)])
def test_welch_test_size_and_power_match_simulation(n_a, n_b, sd_a, sd_b, seed):
    # one-sided Welch tests at effect 0 (the size) and at a true effect of 2 standard errors
    rng = np.random.default_rng(seed)
    tau = math.sqrt(sd_a**2 / n_a + sd_b**2 / n_b)
    for effect in (0.0, 2 * tau):
        a = rng.normal(effect, sd_a, size=(WELCH_STUDIES, n_a))
        b = rng.normal(0.0, sd_b, size=(WELCH_STUDIES, n_b))
        se = np.sqrt(a.var(axis=1, ddof=1) / n_a + b.var(axis=1, ddof=1) / n_b)
        p = stats.t.sf((a.mean(axis=1) - b.mean(axis=1)) / se, min(n_a, n_b) - 1)
        assert p[0] == pytest.approx(welch_test(a[0], b[0]), rel=1e-12)
        predicted = float(welch_test_power(n_a, n_b, sd_a, sd_b, effect))
        rate = rate_of(p < 0.05)
        assert abs(rate - predicted) < 4 * math.sqrt(predicted * (1 - predicted) / WELCH_STUDIES)
        if effect == 0.0:
            assert predicted <= 0.05


def test_what_hsu_df_cost_in_power_as_documented():
    cases = {(5, 5, 0.003, 0.003, 0.01): (0.995, 0.998), (5, 3, 0.003, 0.008, 0.01): (0.16, 0.24),
             (3, 3, 0.005, 0.005, 0.01): (0.18, 0.31), (10, 10, 0.003, 0.003, 0.005): (0.93, 0.95),
             (10, 3, 0.003, 0.003, 0.005): (0.21, 0.43)}
    for case, (hsu, satterthwaite) in cases.items():
        assert float(tost_welch_power(*case)) == pytest.approx(hsu, abs=0.005)
        assert float(tost_welch_power(*case, df="satterthwaite")) == pytest.approx(
            satterthwaite, abs=0.005)


@pytest.mark.parametrize(("delta", "seed"), [(0.01, 24), (0.015, 25)])
def test_welch_tost_power_at_no_difference_matches_simulation(delta, seed):
    predicted = float(tost_welch_power(5, 3, 0.003, 0.008, delta))  # 0.16 and 0.42
    rate = welch_tost_rate(0.0, delta, seed)
    assert abs(rate - predicted) < 4 * math.sqrt(predicted * (1 - predicted) / WELCH_STUDIES)


def test_seeds_needed_welch_reaches_the_requested_power_in_simulation():
    # equal runs per group: the smallest n with power >= 0.8, and n - 1 falls short, both as
    # predicted and as simulated
    sd_a, sd_b, delta, difference = 0.003, 0.008, 0.01, 0.002
    n = seeds_needed_welch(sd_a, sd_b, delta, difference)
    power = tost_welch_power([n - 1, n], [n - 1, n], sd_a, sd_b, delta, difference)
    assert power[0] < 0.8 <= power[1]
    for k, predicted, seed in zip((n - 1, n), power, (26, 27), strict=True):
        rate = welch_tost_rate(difference, delta, seed, n_a=k, n_b=k, sd_a=sd_a, sd_b=sd_b)
        assert abs(rate - predicted) < 4 * math.sqrt(predicted * (1 - predicted) / WELCH_STUDIES)


def test_seeds_needed_welch_test_reaches_the_requested_power():
    # one-sided Welch test, equal runs per group: the smallest n with power >= 0.8 by the exact
    # integral, which simulation confirms above; with one group constant it is the paired
    # t-test's noncentral-t answer (Hsu's n - 1 degrees of freedom are the one-sample test's)
    n = seeds_needed_welch_test(0.003, 0.008, 0.006)
    power = welch_test_power([n - 1, n], [n - 1, n], 0.003, 0.008, 0.006)
    assert power[0] < 0.8 <= power[1]
    assert seeds_needed_welch_test(0.003, 0.0, 0.003) == seeds_needed_difference(0.003, 0.003)
    assert seeds_needed_welch_test(0.01, 0.01, 0.0001, max_n=50) is None


def test_seeds_needed_welch_is_none_outside_the_margin_or_beyond_max_n():
    assert seeds_needed_welch(0.003, 0.008, 0.005, difference=0.005) is None
    assert seeds_needed_welch(0.003, 0.008, 0.005, difference=-0.006) is None
    assert seeds_needed_welch(0.01, 0.01, 0.005, difference=0.0045, max_n=50) is None
    assert seeds_needed_welch(0.0005, 0.0005, 0.005) == 2


def test_pairing_unrelated_runs_by_seed_makes_the_verdict_depend_on_arbitrary_labels():
    # Official runs share nothing with ours seed for seed, so which official run is "seed k" is an
    # arbitrary label. A paired TOST changes its answer when the labels are shuffled; Welch's
    # cannot. These 5 + 5 runs (one draw, rng seed 5) are equivalent under some labellings only.
    rng = np.random.default_rng(5)
    ours, official = rng.normal(0.917, 0.003, size=5), rng.normal(0.917, 0.003, size=5)
    labellings = [official[list(order)] for order in itertools.permutations(range(5))]
    paired = [tost_paired(ours, relabelled, 0.005).equivalent for relabelled in labellings]
    assert 0.2 < rate_of(paired) < 0.8
    for df in ("hsu", "satterthwaite"):
        welch = [tost_welch(ours, relabelled, 0.005, df=df).p_value
                 for relabelled in labellings[:10]]
        assert max(welch) - min(welch) < 1e-12
    assert tost_welch(ours, official, 0.005, df="satterthwaite").equivalent
    # (Hsu's 4 degrees of freedom, against Satterthwaite's 8.0, leave p = 0.055 here)
    # Pairing drops runs: 5 official runs against 3 of ours leave 3 pairs, each difference with
    # SD sqrt(2) * sd. Welch's TOST on all 8 runs has more power with Satterthwaite's degrees of
    # freedom (0.31 against 0.19), less with Hsu's (0.11): the price of a size that never
    # exceeds alpha, whatever the variances, when the groups are this unequal
    paired_power = float(tost_power(3, math.sqrt(2) * 0.003, 0.005))
    assert float(tost_welch_power(5, 3, 0.003, 0.003, 0.005, df="satterthwaite")) > \
        paired_power + 0.1
    assert float(tost_welch_power(5, 3, 0.003, 0.003, 0.005)) == pytest.approx(0.11, abs=0.005)


# ---------------------------------------------------------------------------------------------
# Seeded: the same rng seed, the same interval


@pytest.mark.parametrize("call", [
    lambda rng: two_level_bootstrap(
        [np.arange(300) % 10 != 0, np.arange(300) % 8 != 0, np.arange(300) % 12 != 0], rng),
    lambda rng: probability_of_improvement(SEEDS, SEEDS - 0.001 * np.arange(5), rng),
    lambda rng: paired_bootstrap_examples(np.arange(400) % 9 != 0, np.arange(400) % 7 != 0, rng,
                                          n_resamples=300),
], ids=["two_level_bootstrap", "probability_of_improvement", "paired_bootstrap_examples"])
def test_same_seed_same_interval_other_seed_other_interval(call):
    first = call(np.random.default_rng(19))
    assert call(np.random.default_rng(19)) == first
    assert call(np.random.default_rng(20)) != first


# ---------------------------------------------------------------------------------------------
# Undefined cases: NaN with a warning; bad input: ValueError


def assert_nan_bounds(interval: Interval) -> None:
    assert math.isnan(interval.low) and math.isnan(interval.high)
    assert not interval.contains(interval.estimate)


@pytest.mark.parametrize("function", [t_interval, prediction_interval])
@pytest.mark.parametrize("values", [[0.917], [0.917, 0.917, 0.917]], ids=["one_seed", "no_spread"])
def test_seed_intervals_are_nan_for_one_seed_or_no_spread(function, values):
    with pytest.warns(StatsWarning):
        got = function(values)
    assert_nan_bounds(got)
    assert got.estimate == pytest.approx(0.917)


def test_undefined_cases_warn_and_return_nan():
    with pytest.warns(StatsWarning, match="at least 2"):
        assert math.isnan(expected_best_of_n([0.917], 5))
    with pytest.warns(StatsWarning, match="at least 2"):
        result = tost_one_sample([0.917], 0.917, 0.005)
    assert math.isnan(result.p_value) and not result.equivalent
    with pytest.warns(StatsWarning, match="identical"):
        assert not tost_paired([0.91, 0.92], [0.91, 0.92], 0.005).equivalent
    with pytest.warns(StatsWarning, match="empty test set"):
        assert_nan_bounds(wilson(0, 0))
    with pytest.warns(StatsWarning, match="2 seeds"):
        assert_nan_bounds(two_level_bootstrap([np.ones(10)], np.random.default_rng(0)))
    with pytest.warns(StatsWarning, match="2 runs per arm"):
        got = probability_of_improvement([0.92], [0.91, 0.90], np.random.default_rng(0))
    assert got.estimate == 1.0 and math.isnan(got.low)
    with pytest.warns(StatsWarning, match="undefined"):
        assert seeds_needed(float("nan"), 0.005) is None
    with pytest.warns(StatsWarning, match="undefined"):
        assert seeds_needed_difference(0.0, 0.003) is None


def test_welch_undefined_cases_warn_and_return_nan():
    with pytest.warns(StatsWarning, match="at least 2 values"):
        result = tost_welch([0.917], [0.91, 0.92], 0.005)
    assert math.isnan(result.p_value) and not result.equivalent
    assert result.ci.estimate == pytest.approx(0.002)
    with pytest.warns(StatsWarning, match="zero spread in both"):
        result = tost_welch([0.917, 0.917], [0.915, 0.915, 0.915], 0.005)
    assert math.isnan(result.p_value) and not result.equivalent
    with pytest.warns(StatsWarning, match="at least 2 values"):
        got = welch_difference([], [0.91, 0.92])
    assert_nan_bounds(got)
    assert math.isnan(got.estimate)
    with pytest.warns(StatsWarning, match="undefined"):
        assert seeds_needed_welch(float("nan"), 0.003, 0.005) is None
    with pytest.warns(StatsWarning, match="undefined"):
        assert seeds_needed_welch(0.0, 0.0, 0.005) is None
    with pytest.warns(StatsWarning, match="zero spread in both"):
        assert math.isnan(welch_test([0.917, 0.917], [0.915, 0.915]))
    with pytest.warns(StatsWarning, match="identical"):
        assert math.isnan(t_test([0.917, 0.917], 0.9, "greater"))


def test_paired_bootstrap_falls_back_to_percentile_when_bca_is_degenerate():
    same = np.arange(100) % 4 != 0
    with pytest.warns(StatsWarning, match="percentile"):
        got = paired_bootstrap_examples(same, same, np.random.default_rng(0), n_resamples=200)
    assert (got.estimate, got.low, got.high) == (0.0, 0.0, 0.0)


def test_expected_best_of_n_with_no_spread_is_the_mean():
    assert expected_best_of_n([0.917, 0.917], 10) == pytest.approx(0.917)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: t_interval([0.9, np.nan]), "NaN"),
    (lambda: t_interval([0.9, 0.91], level=95), "level"),
    (lambda: paired_difference([0.9, 0.91], [0.9]), "same length"),
    (lambda: mcnemar_exact([1, 0, 2], [1, 0, 1]), "0/1"),
    (lambda: mcnemar_exact([1, 0], [1, 0, 1]), "same test examples"),
    (lambda: wilson(6, 5), "k <= n"),
    (lambda: tost_one_sample([0.9, 0.91], 0.9, 0.0), "delta"),
    (lambda: seeds_needed_difference(0.003, -0.001), "positive"),
    (lambda: tost_welch([0.9, 0.91], [0.9, 0.92], 0.0), "delta"),
    (lambda: tost_welch([0.9, 0.91], [0.9, np.nan], 0.005), "NaN"),
    (lambda: tost_welch([0.9, 0.91], [0.9, 0.92], 0.005, alpha=0.5), "alpha"),
    (lambda: welch_difference([0.9, 0.91], [[0.9, 0.92]]), "one-dimensional"),
    (lambda: tost_welch_power(1, 3, 0.003, 0.008, 0.005), "at least 2 runs"),
    (lambda: tost_welch_power(3, 3, 0.0, 0.0, 0.005), "not both 0"),
    (lambda: tost_welch([0.9, 0.91], [0.9, 0.92], 0.005, df="welch"), "df must be one of"),
    (lambda: welch_test([0.9, 0.91], [0.9, 0.92], alternative="two-sided"), "alternative"),
    (lambda: t_test([0.9, 0.91], 0.9, "both"), "alternative"),
    (lambda: seeds_needed_welch_test(0.003, 0.003, 0.0), "positive"),
])
def test_malformed_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_interval_contains_and_to_dict():
    interval = Interval(0.917, 0.91, 0.92, 0.95)
    assert interval.contains(0.91) and interval.contains(0.92) and not interval.contains(0.921)
    assert interval.to_dict() == {"estimate": 0.917, "low": 0.91, "high": 0.92, "level": 0.95}
