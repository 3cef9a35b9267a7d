"""Reward-model reliability: saturation, downward drift, anomaly rate, consistency, and the end-of-run report."""

from __future__ import annotations

import math
import random

import pytest

from rldk_track.analyzers import RewardReliability
from rldk_track.records import Alert, Summary

SEEDS = range(5)
ONSET = 200


def preference_run(seed, steps=300, accuracy_level=lambda t: 0.5 + 0.3 * (1 - math.exp(-t / 50))):
    """A DPO / reward-model run: preference accuracy of batches of 16 pairs, and the margin."""
    rng = random.Random(seed)
    return [{"reward/accuracy": sum(rng.random() < accuracy_level(t) for _ in range(16)) / 16,
             "reward/margin": 0.5 * (1 - math.exp(-t / 50)) + rng.gauss(0, 0.1)} for t in range(steps)]


def changed(stream, key, start, value_at, stop=None):
    out = [dict(v) for v in stream]
    for step, values in enumerate(out[start:stop], start):
        values[key] = value_at(step, values[key])
    return out


@pytest.mark.parametrize("kind", ["grpo", "ppo"])
@pytest.mark.parametrize("seed", SEEDS)
def test_reward_reliability_is_silent_on_healthy_rl_runs(streams, seed, kind):
    assert streams.feed(RewardReliability(), streams.healthy(seed, 400, kind)) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_reward_reliability_is_silent_on_healthy_preference_runs(streams, seed):
    assert streams.feed(RewardReliability(), preference_run(seed)) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_saturation_fires_when_most_groups_get_one_reward(streams, seed):
    stream = changed(streams.healthy(seed, 300), "reward/frac_zero_std", ONSET, lambda s, v: 0.95)
    (alert,) = streams.raised(streams.feed(RewardReliability(), stream))
    assert (alert.rule, alert.metric) == ("reward_reliability/saturation", "reward/frac_zero_std")
    assert ONSET <= alert.step < ONSET + 50  # the window's mean passes 0.8
    assert alert.value >= alert.threshold == 0.8


def test_saturation_falls_back_to_a_collapsed_reward_std(streams):
    stream = [{k: v for k, v in values.items() if k != "reward/frac_zero_std"} for values in streams.healthy(0, 300)]
    stream = changed(stream, "reward/std", ONSET, lambda s, v: 0.001)
    (alert,) = streams.raised(streams.feed(RewardReliability(), stream))
    assert alert.metric == "reward/std" and ONSET <= alert.step < ONSET + 50


def test_saturation_clears_when_the_reward_spread_returns(streams):
    stream = changed(streams.healthy(0, 400), "reward/frac_zero_std", ONSET, lambda s, v: 0.95, stop=280)
    alerts = streams.feed(RewardReliability(), stream)
    assert [(a.state, a.metric) for a in alerts] == [("raised", "reward/frac_zero_std"), ("cleared", "reward/frac_zero_std")]
    assert 280 <= alerts[1].step < 280 + 50


@pytest.mark.parametrize("seed", SEEDS)
def test_a_falling_reward_raises_drift(streams, seed):
    stream = changed(streams.healthy(seed, 320), "reward/mean", ONSET, lambda s, v: v - 0.3)
    (alert,) = streams.raised(streams.feed(RewardReliability(), stream))  # a level shift: no anomalies
    assert (alert.rule, alert.metric, alert.threshold) == ("reward_reliability/drift", "reward/mean", -3.0)
    assert ONSET <= alert.step < ONSET + 50
    assert "below its best window" in alert.message


def test_drift_stays_raised_until_the_reward_recovers(streams):
    stream = changed(streams.healthy(0, 400), "reward/mean", ONSET, lambda s, v: v - 0.3, stop=300)
    alerts = streams.feed(RewardReliability(), stream)
    assert [a.state for a in alerts] == ["raised", "cleared"]
    assert 300 <= alerts[1].step < 300 + 50


def test_a_rising_reward_is_not_drift(streams):
    stream = changed(streams.healthy(0, 320), "reward/mean", ONSET, lambda s, v: v + 0.3)
    assert streams.feed(RewardReliability(), stream) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_frequent_outlying_rewards_raise_the_anomaly_rate(streams, seed):
    stream = changed(streams.healthy(seed, 300), "reward/mean", ONSET,
                     lambda s, v: v + (2.0 if s % 5 == 0 else 0.0))  # every 5th batch
    (alert,) = streams.raised(streams.feed(RewardReliability(), stream))  # isolated outliers: no drift
    assert alert.rule == "reward_reliability/anomaly_rate"
    assert ONSET <= alert.step < ONSET + 50
    assert alert.value >= 0.1


def test_the_anomaly_rate_clears_once_outliers_stop(streams):
    stream = changed(streams.healthy(0, 400), "reward/mean", ONSET, lambda s, v: v + (2.0 if s % 5 == 0 else 0.0), stop=260)
    alerts = streams.feed(RewardReliability(), stream)
    assert [(a.rule, a.state) for a in alerts] == [("reward_reliability/anomaly_rate", "raised"),
                                                  ("reward_reliability/anomaly_rate", "cleared")]
    assert 260 <= alerts[1].step < 260 + 50


def test_consistency_clears_when_accuracy_rises_above_chance(streams):
    stream = preference_run(1, accuracy_level=lambda t: 0.3 if t < 100 else 0.8)
    alerts = streams.feed(RewardReliability(), stream)
    assert [(a.rule, a.state) for a in alerts] == [("reward_reliability/consistency", "raised"),
                                                  ("reward_reliability/consistency", "cleared")]
    assert 100 <= alerts[1].step < 100 + 50


def test_preference_accuracy_below_chance_raises_consistency(streams):
    stream = preference_run(0, accuracy_level=lambda t: 0.3)  # chosen and rejected swapped
    (alert,) = streams.raised(streams.feed(RewardReliability(), stream))
    assert (alert.rule, alert.metric, alert.step) == ("reward_reliability/consistency", "reward/accuracy", 49)  # as soon as the window is full


def test_finish_reports_the_statistics_as_summary_and_an_info_alert(streams):
    rule = RewardReliability()
    stream = changed(streams.healthy(0, 300), "reward/frac_zero_std", ONSET, lambda s, v: 0.95)
    (saturated,) = streams.feed(rule, stream)
    summary, report = rule.finish()
    assert isinstance(summary, Summary) and isinstance(report, Alert)
    values = summary.values
    assert values["reward_reliability/saturation"] == pytest.approx(0.95)
    assert 0 < values["reward_reliability/stability"] <= 1
    assert abs(values["reward_reliability/drift"]) < 3 and values["reward_reliability/anomaly_rate"] < 0.1
    assert "reward_reliability/consistency" not in values  # no preference accuracy in an RL run
    assert (report.rule, report.severity, report.step) == ("reward_reliability/report", "info", 299)
    assert f"Reward-reliability alerts raised: saturation at step {saturated.step}" in report.message


def test_the_report_of_a_healthy_reward_does_not_read_as_a_healthy_run(streams):
    """The run may hold a critical alert of another rule (KL drift, reward hacking): the report
    says which alerts it counts."""
    rule = RewardReliability()
    assert streams.feed(rule, streams.healthy(0, 300)) == []
    _, report = rule.finish()
    assert "Alerts raised: none" not in report.message
    assert "Reward-reliability alerts raised: none (other rules' alerts are their own)" in report.message


def test_each_condition_raises_and_clears_under_its_own_name(streams):
    stream = changed(streams.healthy(0, 400), "reward/frac_zero_std", ONSET, lambda s, v: 0.95)
    stream = changed(stream, "reward/mean", 250, lambda s, v: v - 0.3, stop=320)
    alerts = streams.feed(RewardReliability(), stream)
    assert [(a.rule, a.state) for a in alerts] == [
        ("reward_reliability/saturation", "raised"), ("reward_reliability/drift", "raised"),
        ("reward_reliability/drift", "cleared")]  # saturation stays raised while drift comes and goes


def test_finish_reports_nothing_for_a_run_without_rewards():
    rule = RewardReliability()
    rule.update(0, {"loss": 1.0})
    assert rule.finish() == []
