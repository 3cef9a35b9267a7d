"""The plain-Python statistics the rules use, against scipy as the reference."""

from __future__ import annotations

import random
from statistics import median

import pytest
from scipy import stats

from rldk_track.analyzers import NonFinite
from rldk_track.analyzers.stats import SlidingWindow, SortedWindow, all_finite, linear_trend, robust_sd


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_linear_trend_matches_scipy_linregress(offset):
    rng = random.Random(1)
    values = [offset + 0.01 * i + rng.gauss(0, 0.1) for i in range(50)]
    trend, reference = linear_trend(values), stats.linregress(range(50), values)
    assert trend.slope == pytest.approx(reference.slope, rel=1e-6)
    assert trend.start == pytest.approx(reference.intercept, rel=1e-12)
    assert trend.t == pytest.approx(reference.slope / reference.stderr, rel=1e-6)


def test_sliding_window_trend_equals_a_fresh_fit_over_a_long_stream():
    rng = random.Random(2)
    window, values = SlidingWindow(50), []
    for i in range(3000):
        value = (1e5 if i > 1500 else 0.0) + 0.002 * i + rng.gauss(0, 1)
        window.append(value)
        values.append(value)
        if i % 7 == 0 and len(window) >= 3:
            fresh, sliding = linear_trend(values[-50:]), window.trend()
            assert sliding.slope == pytest.approx(fresh.slope, rel=1e-6, abs=1e-9)
            assert sliding.residual_sd == pytest.approx(fresh.residual_sd, rel=1e-4)
            assert sliding.end == pytest.approx(fresh.end, rel=1e-9)


def test_pushed_values_give_the_same_window_and_sums_as_appended_ones():
    """reward_hacking defers its KL/entropy/length updates (push): its fits must be the same floats."""
    rng = random.Random(6)
    for size in (3, 10, 40):
        eager, lazy = SlidingWindow(size), SlidingWindow(size)
        for i in range(3000):
            value = rng.choice([rng.gauss(0, 1), 1e6 + rng.gauss(0, 1), 0.0, float(i)])
            eager.append(value)
            lazy.push(value) if rng.random() < 0.9 else lazy.append(value)
            assert lazy.full == eager.full and len(lazy) == len(eager)
            if rng.random() < (0.3 if i < 100 else 0.01) and len(eager) >= 3:
                assert lazy.trend() == eager.trend()
                assert list(lazy.values) == list(eager.values)
        assert lazy.trend() == eager.trend()


def test_robust_sd_estimates_the_standard_deviation_and_ignores_outliers():
    rng = random.Random(3)
    values = [rng.gauss(5, 2) for _ in range(2000)]
    assert robust_sd(values) == pytest.approx(2, rel=0.05)
    assert robust_sd(values + [1e9] * 50) == pytest.approx(2, rel=0.1)


def test_sorted_window_median_and_robust_sd_are_exactly_those_of_its_values():
    """The rules' verdicts must not depend on which of the two computes them: same floats out."""
    rng = random.Random(4)
    window, values = SortedWindow(20), []
    for i in range(2000):
        value = rng.choice([rng.gauss(0, 1), round(rng.gauss(0, 1), 1), 0.0, -0.0, 1e6 * rng.random()])
        window.append(value)
        values = (values + [value])[-20:]
        center = median(values) if i % 3 else rng.gauss(0, 1)
        assert window.median() == median(values)
        assert window.robust_sd(center) == robust_sd(values, center)


def test_all_finite_is_false_for_nan_inf_and_for_a_sum_that_overflows():
    assert all_finite({"a": 1.0, "b": -2.0, "c": 0})
    assert not all_finite({"a": 1.0, "b": float("nan")})
    assert not all_finite({"a": float("inf"), "b": float("-inf")})
    assert not all_finite({"a": 1e308, "b": 1e308})  # finite, but then the caller looks at each value
    assert NonFinite().update(0, {"a": 1e308, "b": 1e308}) == []


def test_sorted_window_robust_sd_below_answers_only_what_is_clear_and_rightly():
    """reward_reliability settles most anomaly tests with it: a wrong answer would change a verdict."""
    rng = random.Random(5)
    answered = 0
    for trial in range(3000):
        window = SortedWindow(rng.choice([2, 3, 10, 48, 49]))
        offset = rng.choice([0.0, 1.0, -1e6, 1e9])
        for _ in range(rng.randint(1, 60)):
            window.append(offset + rng.choice([rng.gauss(0, 1), round(rng.gauss(0, 1), 1), 0.0]))
        center = window.median() if trial % 4 else offset + rng.gauss(0, 1)
        exact = window.robust_sd(center)
        x = exact * rng.choice([1.0, 1 + 1e-9, 1 - 1e-9, 1.5, 0.5, 3.0]) if exact else rng.random()
        below = window.robust_sd_below(center, x)
        if below is True:
            assert exact < x * (1 - 1e-7)
        elif below is False:
            assert exact > x * (1 + 1e-7)
        answered += below is not None
    assert answered > 600  # and it settles those not within a hair of x (half the trials are)
