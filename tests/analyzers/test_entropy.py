"""Entropy collapse."""

from __future__ import annotations

import pytest

from rldk_track.analyzers import EntropyCollapse

SEEDS = range(5)


def collapsed(stream, from_step, to_step, factor):
    out = [dict(v) for v in stream]
    for values in out[from_step:to_step]:
        values["entropy/mean"] *= factor
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_collapse_fires_within_patience_of_the_drop(streams, seed):
    stream = collapsed(streams.healthy(seed, 300), 180, 300, 0.2)  # ~20 % of the early level
    alerts = streams.feed(EntropyCollapse(), stream)
    (alert,) = streams.raised(alerts)  # 120 collapsed steps: one alert
    assert 180 <= alert.step < 180 + 5
    assert (alert.rule, alert.metric, alert.severity) == ("entropy_collapse", "entropy/mean", "warning")
    assert alert.value < alert.threshold


@pytest.mark.parametrize("kind", ["grpo", "ppo", "sft"])
@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_collapse_is_silent_on_healthy_runs(streams, seed, kind):
    assert streams.feed(EntropyCollapse(), streams.healthy(seed, 400, kind)) == []


def test_entropy_collapse_is_critical_below_the_critical_fraction(streams):
    stream = collapsed(streams.healthy(0, 300), 180, 300, 0.05)
    (alert,) = streams.raised(streams.feed(EntropyCollapse(), stream))
    assert alert.severity == "critical"


def test_entropy_collapse_clears_when_entropy_recovers(streams):
    stream = collapsed(streams.healthy(1, 300), 150, 200, 0.2)
    alerts = streams.feed(EntropyCollapse(), stream)
    assert [a.state for a in alerts] == ["raised", "cleared"]
    assert 200 <= alerts[1].step < 200 + 3 + 3  # median back within 3 steps, then clear_after=3


def test_entropy_collapse_does_not_clear_in_the_hysteresis_band(streams):
    stream = collapsed(streams.healthy(1, 300), 150, 200, 0.2)
    early = 1.2  # the healthy stream's starting entropy
    for step, values in enumerate(stream[200:], 200):
        values["entropy/mean"] = early * 0.35 * (1 + 0.01 * (step % 3 - 1))  # above 30 %, below the 40 % to clear
    alerts = streams.feed(EntropyCollapse(), stream)
    assert [a.state for a in alerts] == ["raised"]


def test_entropy_collapse_fraction_is_configurable(streams):
    stream = collapsed(streams.healthy(2, 300), 180, 300, 0.45)
    assert streams.feed(EntropyCollapse(), stream) == []
    assert streams.raised(streams.feed(EntropyCollapse(fraction=0.5, clear_fraction=0.6), stream))
