"""Trend summary at the end of the run (Mann-Kendall + Sen's slope over bounded-memory series)."""

from __future__ import annotations

import random

import pytest
from scipy import stats

from rldk_track.analyzers import Trends
from rldk_track.analyzers.stats import Downsampled, mann_kendall, sen_slope
from rldk_track.records import Alert, Summary


def finish(rule, stream):
    for step, values in enumerate(stream):
        assert rule.update(step, values) == []  # never alerts during the run
    return rule.finish()


def test_trends_summarise_direction_slope_and_significance_per_metric(streams):
    summary, report = finish(Trends(), streams.healthy(0, 400))
    assert isinstance(summary, Summary) and isinstance(report, Alert)
    trends = Trends()
    finish(trends, streams.healthy(0, 400))
    found = trends.trends()
    assert found["reward/mean"]["direction"] == "up"
    assert found["entropy/mean"]["direction"] == "down"
    assert found["kl/mean"]["direction"] == "up"
    assert found["grad/norm"]["direction"] == "flat"  # noise around a constant level
    assert found["reward/format/mean"]["direction"] == "up"  # reward components are watched too
    assert summary.values["trend/entropy/mean/slope"] < 0 < summary.values["trend/reward/mean/slope"]
    assert summary.values["trend/grad/norm/p_value"] > 0.01
    assert (report.rule, report.severity, report.step) == ("trends", "info", 399)
    assert "reward/mean up" in report.message and "entropy/mean down" in report.message


def test_trend_slope_is_sens_slope_per_step():
    rng = random.Random(3)
    stream = [{"reward": 0.5 + 0.002 * step + rng.gauss(0, 0.05)} for step in range(300)]
    rule = Trends()
    finish(rule, stream)
    trend = rule.trends()["reward"]
    exact = stats.theilslopes([v["reward"] for v in stream], range(300)).slope
    assert trend["slope"] == pytest.approx(exact, rel=0.02)
    assert trend["slope"] == pytest.approx(0.002, rel=0.1)
    assert trend["points"] == 300


def test_a_metric_logged_under_canonical_and_raw_names_is_reported_once():
    rule = Trends()
    finish(rule, [{"kl": 0.01 * s, "kl/mean": 0.01 * s} for s in range(50)])
    assert list(rule.trends()) == ["kl/mean"]


def test_trends_can_watch_every_metric_or_a_chosen_list():
    stream = [{"custom/score": float(s), "reward": 1.0} for s in range(50)]
    everything = Trends(metrics="all")
    finish(everything, stream)
    assert set(everything.trends()) == {"custom/score", "reward"}
    chosen = Trends(metrics=["custom/score"])
    finish(chosen, stream)
    assert list(chosen.trends()) == ["custom/score"]


def test_short_runs_have_no_trend_summary():
    assert finish(Trends(), [{"reward": 1.0}] * 5) == []
    assert Trends().finish() == []


@pytest.mark.parametrize("slope", [0.0, 0.0005, -0.002])
def test_mann_kendall_and_sens_slope_agree_with_scipy(slope):
    rng = random.Random(7)
    values = [slope * i + rng.gauss(0, 0.1) for i in range(200)]
    values[50] = values[51]  # a tie
    tau, p_value = mann_kendall(values)
    reference = stats.kendalltau(range(200), values, method="asymptotic")
    assert tau == pytest.approx(reference.statistic, abs=1e-3)  # tau-a vs scipy's tau-b: one tie apart
    assert p_value == pytest.approx(reference.pvalue, rel=0.05, abs=1e-4)
    assert sen_slope(list(range(200)), values) == pytest.approx(stats.theilslopes(values, range(200)).slope, rel=1e-9)


def test_downsampled_series_stay_bounded_and_keep_the_shape():
    rng = random.Random(0)
    series = Downsampled(capacity=256)
    values = [0.001 * step + rng.gauss(0, 1) for step in range(100_000)]
    for step, value in enumerate(values):
        series.add(step, value)
    steps, means = series.points()
    assert len(steps) <= 256 and series.count == 100_000
    assert sum(means) / len(means) == pytest.approx(sum(values) / len(values), rel=0.01)
    assert stats.theilslopes(means, steps).slope == pytest.approx(0.001, rel=0.05)


@pytest.mark.parametrize("capacity", [2, 3, 128])
def test_downsampled_extend_is_add_point_by_point(capacity):
    """Trends adds its pending records a block at a time: the buckets must be exactly the same."""
    rng = random.Random(capacity)
    points = [(i // 2, rng.gauss(0, 1) * 10 ** rng.randint(-3, 6)) for i in range(3000)]
    one_by_one, in_blocks = Downsampled(capacity), Downsampled(capacity)
    for step, value in points:
        one_by_one.add(step, value)
    start = 0
    while start < len(points):
        block = points[start:start + rng.randint(1, 100)]
        in_blocks.extend([s for s, _ in block], [v for _, v in block])
        start += len(block)
    assert in_blocks.points() == one_by_one.points() and in_blocks.count == one_by_one.count


def test_mann_kendall_counts_every_pair_with_ties():
    rng = random.Random(7)
    for n in (3, 10, 128):
        values = [round(rng.gauss(0, 1), 1) for _ in range(n)]
        s = sum((w > v) - (w < v) for i, v in enumerate(values) for w in values[i + 1:])
        assert mann_kendall(values)[0] == s / (n * (n - 1) / 2)
