"""NaN / Inf in any metric."""

from __future__ import annotations

import math

import pytest

from rldk_track.analyzers import NonFinite

SEEDS = range(5)


@pytest.mark.parametrize("kind", ["grpo", "ppo", "sft"])
@pytest.mark.parametrize("seed", SEEDS)
def test_nonfinite_is_silent_on_healthy_runs(streams, seed, kind):
    assert streams.feed(NonFinite(), streams.healthy(seed, 200, kind)) == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_fires_critical_at_the_first_bad_step(streams, bad):
    stream = streams.healthy(0, 100)
    stream[60]["grad/norm"] = bad
    (alert,) = streams.raised(streams.feed(NonFinite(), stream))
    assert (alert.step, alert.rule, alert.severity, alert.metric) == (60, "nonfinite", "critical", "grad/norm")
    assert "grad/norm" in alert.message and alert.action


def test_nan_spreading_to_every_metric_is_one_alert_naming_the_first_few(streams):
    stream = streams.healthy(0, 100)
    stream[60]["loss/total"] = math.nan
    for values in stream[61:80]:
        for key in values:
            values[key] = math.nan
    alerts = streams.feed(NonFinite(), stream)
    assert [(a.state, a.step) for a in alerts] == [("raised", 60), ("cleared", 80)]
    assert alerts[0].metric == "loss/total"


def test_nonfinite_clears_only_when_every_bad_metric_is_finite_again(streams):
    stream = streams.healthy(0, 100)
    stream[50]["kl/mean"] = math.nan
    stream[50]["reward/mean"] = math.inf
    stream[51]["kl/mean"] = math.nan  # reward/mean is finite again at 51, KL only at 52
    alerts = streams.feed(NonFinite(), stream)
    assert [(a.state, a.step) for a in alerts] == [("raised", 50), ("cleared", 52)]


def test_a_record_without_the_bad_metric_does_not_clear_it():
    rule = NonFinite()
    assert streams_states(rule, [(10, {"loss": math.nan}), (10, {"perf/rollout_s": 1.2}), (11, {"loss": 0.3})]) == [
        ("raised", 10), ("cleared", 11)]


def test_ignored_prefixes_are_not_watched():
    rule = NonFinite(ignore=("eval/",))
    assert rule.update(5, {"eval/loss": math.nan, "loss": 1.0}) == []


def streams_states(rule, records):
    return [(a.state, a.step) for step, values in records for a in rule.update(step, values)]
