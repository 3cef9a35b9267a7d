"""The comparison statistics, checked against scipy and closed forms on known inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats as sps

from rldk_track.compare import stats


def ar1(n: int, phi: float, seed: int, mean: float = 0.0) -> np.ndarray:
    """An AR(1) series x_t = phi x_{t-1} + e_t (unit-variance noise), plus ``mean``."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=n)
    x = np.empty(n)
    x[0] = noise[0] / math.sqrt(1 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    return x + mean


def test_welch_and_mann_whitney_p_values_are_scipys():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.3, 1.0, 40), rng.normal(0.0, 2.0, 55)
    result = stats.compare_samples(a, b)
    assert result.welch_p == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-12)
    assert result.welch_t == pytest.approx(sps.ttest_ind(a, b, equal_var=False).statistic, rel=1e-12)
    assert result.mannwhitney_p == pytest.approx(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue, rel=1e-12)
    assert (result.n, result.n_baseline) == (40, 55)
    assert result.difference == pytest.approx(a.mean() - b.mean())


def test_adjusted_p_is_plain_welch_when_points_are_independent():
    # alternating series have negative lag-1 autocorrelation, clipped to 0: n_eff == n
    a = np.tile([1.0, 3.0], 10)
    b = np.tile([0.0, 1.5], 12)
    result = stats.compare_samples(a, b)
    assert result.n_eff == 20 and result.n_eff_baseline == 24
    assert result.adjusted_p == pytest.approx(result.welch_p, rel=1e-9)


def test_effective_sample_size_of_an_ar1_series_follows_its_autocorrelation():
    x = ar1(20_000, 0.9, seed=2)
    expected = 20_000 * 0.1 / 1.9
    assert stats.effective_sample_size(x) == pytest.approx(expected, rel=0.15)
    assert stats.lag1_autocorrelation(x) == pytest.approx(0.9, abs=0.02)


def test_hedges_g_matches_the_closed_form():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 3.0, 4.0, 6.0])
    pooled = math.sqrt((3 * np.var(a, ddof=1) + 3 * np.var(b, ddof=1)) / 6)
    d = (a.mean() - b.mean()) / pooled
    assert stats.hedges_g(a, b) == pytest.approx(d * (1 - 3 / (4 * 8 - 9)))


def test_iid_bootstrap_ci_agrees_with_scipys_percentile_bootstrap():
    x = np.random.default_rng(3).normal(5.0, 2.0, 400)
    low, high = stats.bootstrap_mean_ci(x, block=1, resamples=4000, seed=1)
    reference = sps.bootstrap((x,), np.mean, method="percentile", n_resamples=4000,
                              random_state=np.random.default_rng(9)).confidence_interval
    width = reference.high - reference.low
    assert low == pytest.approx(reference.low, abs=0.05 * width)
    assert high == pytest.approx(reference.high, abs=0.05 * width)


def test_block_bootstrap_widens_the_ci_of_an_autocorrelated_window():
    x = ar1(2000, 0.95, seed=4)
    iid = stats.bootstrap_mean_ci(x, block=1)
    blocked = stats.bootstrap_mean_ci(x)  # block length = autocorrelation time
    assert (blocked[1] - blocked[0]) > 3 * (iid[1] - iid[0])
    # the true mean (0) lies in the blocked CI
    assert blocked[0] < 0 < blocked[1]


def test_verdict_names_the_higher_run_with_its_p_value():
    a = np.random.default_rng(5).normal(1.0, 0.1, 60)
    b = np.random.default_rng(6).normal(0.0, 0.1, 60)
    result = stats.compare_samples(a, b, name="B")
    assert result.significant and result.direction == "higher"
    assert result.verdict.startswith("B higher, p<0.001")


def test_verdict_never_claims_a_difference_from_too_few_points():
    result = stats.compare_samples(np.array([10.0, 10.1, 10.2]), np.array([0.0, 0.1, 0.2]), name="B")
    assert not result.significant
    assert result.verdict.startswith("too few independent points")


def test_many_correlated_points_do_not_make_a_difference_significant():
    # 200 points each, but a slow random walk: only a handful are independent. Plain Welch on
    # all 200 points would call the gap overwhelming; the verdict does not.
    a, b = ar1(200, 0.99, seed=7, mean=0.5), ar1(200, 0.99, seed=8)
    result = stats.compare_samples(a, b, name="B")
    assert result.welch_p < 1e-6
    assert result.n == 200 and result.n_eff < 10
    assert not result.significant


def test_verdict_says_no_clear_difference_for_the_same_distribution():
    rng = np.random.default_rng(10)
    a = rng.normal(0.0, 1.0, 80)
    b = rng.permutation(a)[:70] + 0.01  # the same values, reordered and nudged
    result = stats.compare_samples(a, b, name="B")
    assert not result.significant
    assert result.verdict.startswith("no clear difference, p=")


def test_area_under_the_curve_is_the_trapezoid_rule():
    x = np.array([0.0, 1.0, 3.0, 7.0])
    y = np.array([1.0, 2.0, 0.5, 4.0])
    assert stats.area_under_curve(x, y) == pytest.approx(integrate.trapezoid(y, x))


def test_ema_is_tensorboards_debiased_smoothing():
    y = np.array([1.0, 5.0, 2.0, math.nan, 4.0])
    weight = 0.6
    expected, last, count = [], 0.0, 0
    for value in y:
        if math.isnan(value):
            expected.append(math.nan)
            continue
        last = weight * last + (1 - weight) * value
        count += 1
        expected.append(last / (1 - weight**count))
    np.testing.assert_allclose(stats.ema(y, weight), expected)
    np.testing.assert_array_equal(stats.ema(y, 0.0), y)


@pytest.mark.parametrize("spec, n, count", [("20%", 50, 10), ("20%", 3, 1), (0.5, 9, 5), ("50", 20, 20), (7, 100, 7)])
def test_final_window_size(spec, n, count):
    assert stats.window_size(n, spec) == count


@pytest.mark.parametrize("spec", ["0%", "abc", "150%", "-3"])
def test_bad_window_is_refused_with_a_hint(spec):
    with pytest.raises(ValueError, match="window"):
        stats.parse_window(spec)


def test_first_reach_honours_the_goal():
    x = np.array([0, 10, 20, 30])
    assert stats.first_reach(x, np.array([0.1, 0.5, 0.9, 0.7]), 0.8, "max") == 20
    assert stats.first_reach(x, np.array([3.0, 2.0, 0.4, 0.1]), 0.5, "min") == 20
    assert stats.first_reach(x, np.array([0.1, 0.2, 0.3, 0.4]), 0.8, "max") is None
