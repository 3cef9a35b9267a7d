"""KL rules: spike, drift above target, stuck controller."""

from __future__ import annotations

import pytest

from rldk_track.analyzers import KLControllerStuck, KLDrift, KLSpike

SEEDS = range(5)


def scaled(stream, key, factor, steps):
    """The stream with ``key`` multiplied by ``factor`` at the given steps."""
    out = [dict(v) for v in stream]
    for step in steps:
        out[step][key] *= factor
    return out


# -- spike -------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_kl_spike_fires_at_the_spike_step(streams, seed):
    stream = scaled(streams.healthy(seed, 200), "kl/mean", 6.0, [120])
    alerts = streams.raised(streams.feed(KLSpike(), stream))
    assert [(a.step, a.rule, a.metric, a.severity) for a in alerts] == [(120, "kl_spike", "kl/mean", "warning")]
    assert alerts[0].value == stream[120]["kl/mean"] > alerts[0].threshold
    assert alerts[0].action


@pytest.mark.parametrize("kind", ["grpo", "ppo"])
@pytest.mark.parametrize("seed", SEEDS)
def test_kl_spike_is_silent_on_healthy_runs(streams, seed, kind):
    assert streams.feed(KLSpike(), streams.healthy(seed, 400, kind)) == []


def test_kl_spike_over_several_steps_is_raised_once_and_cleared_after_recovery(streams):
    stream = scaled(streams.healthy(0, 200), "kl/mean", 8.0, range(120, 124))
    alerts = streams.feed(KLSpike(), stream)
    assert [(a.state, a.step) for a in alerts] == [("raised", 120), ("cleared", 125)]  # 2 healthy steps to clear


def test_kl_spike_is_critical_when_kl_jumps_past_the_critical_ratio(streams):
    stream = scaled(streams.healthy(1, 200), "kl/mean", 30.0, [150])
    (alert,) = streams.raised(streams.feed(KLSpike(), stream))
    assert (alert.step, alert.severity) == (150, "critical")


def test_kl_spike_reads_the_plain_loop_name(streams):
    stream = [{"kl": v["kl/mean"]} for v in scaled(streams.healthy(2, 200), "kl/mean", 6.0, [90])]
    (alert,) = streams.raised(streams.feed(KLSpike(), stream))
    assert (alert.step, alert.metric) == (90, "kl")


def test_kl_spike_thresholds_are_configurable(streams):
    stream = scaled(streams.healthy(3, 200), "kl/mean", 6.0, [100])
    assert [a.step for a in streams.raised(streams.feed(KLSpike(), stream))] == [100]
    assert streams.feed(KLSpike(ratio=10), stream) == []


# -- drift -------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_kl_drift_fires_within_its_window_once_kl_stays_above_target(streams, seed):
    stream = scaled(streams.healthy(seed, 300), "kl/mean", 12.0, range(150, 300))  # ~0.3, target 0.1
    alerts = streams.feed(KLDrift(target=0.1), stream)
    (alert,) = streams.raised(alerts)  # 150 steps above target: one alert
    assert 150 <= alert.step < 150 + 10
    assert (alert.metric, alert.severity, alert.threshold) == ("kl/mean", "warning", 0.1)
    assert alert.value > 0.1


@pytest.mark.parametrize("kind", ["grpo", "ppo"])
@pytest.mark.parametrize("seed", SEEDS)
def test_kl_drift_is_silent_on_healthy_runs(streams, seed, kind):
    assert streams.feed(KLDrift(), streams.healthy(seed, 400, kind)) == []


def test_kl_drift_clears_when_kl_falls_back_under_target(streams):
    stream = scaled(streams.healthy(0, 300), "kl/mean", 12.0, range(150, 200))
    alerts = streams.feed(KLDrift(), stream)
    assert [a.state for a in alerts] == ["raised", "cleared"]
    assert 200 <= alerts[1].step < 210


def test_kl_drift_target_is_configurable_for_summed_kl(streams):
    legacy = [{"objective/kl": 40 * v["kl/mean"]} for v in streams.healthy(0, 300)]  # summed over tokens
    assert streams.raised(streams.feed(KLDrift(), legacy))  # the per-token default does not fit
    assert streams.feed(KLDrift(target=6.0), legacy) == []


def test_kl_drift_escalates_to_critical_far_above_target(streams):
    stream = scaled(streams.healthy(0, 300), "kl/mean", 12.0, range(150, 300))
    stream = scaled(stream, "kl/mean", 10.0, range(250, 300))  # ~3: 30x the target
    raised = streams.raised(streams.feed(KLDrift(), stream))
    assert [a.severity for a in raised] == ["warning", "critical"]
    assert 250 <= raised[1].step < 260


# -- controller stuck --------------------------------------------------------------------------
def frozen_controller(stream, from_step, kl_factor):
    """An adaptive controller whose coefficient stops at ``from_step`` while KL climbs."""
    out = [dict(v) for v in stream]
    frozen = out[from_step]["kl/coef"]
    for values in out[from_step:]:
        values["kl/coef"] = frozen
        values["kl/mean"] *= kl_factor
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_kl_controller_stuck_fires_when_an_adaptive_coefficient_freezes_with_kl_far_off(streams, seed):
    stream = frozen_controller(streams.healthy(seed, 300, "ppo"), 200, 15.0)
    (alert,) = streams.raised(streams.feed(KLControllerStuck(target=0.02), stream))
    assert 200 <= alert.step < 200 + 20
    assert (alert.rule, alert.metric) == ("kl_controller_stuck", "kl/mean")
    assert alert.value > alert.threshold == pytest.approx(0.04)


@pytest.mark.parametrize("seed", SEEDS)
def test_kl_controller_stuck_is_silent_while_the_controller_moves(streams, seed):
    assert streams.feed(KLControllerStuck(target=0.02), streams.healthy(seed, 400, "ppo")) == []


def test_kl_controller_stuck_ignores_a_fixed_coefficient(streams):
    fixed = [{**v, "beta": 0.04, "kl/mean": v["kl/mean"] * 20} for v in streams.healthy(0, 300)]
    assert streams.feed(KLControllerStuck(), fixed) == []
    assert streams.raised(streams.feed(KLControllerStuck(adaptive=True), fixed))  # unless told it adapts


def test_kl_controller_stuck_clears_when_the_coefficient_moves_again(streams):
    stream = frozen_controller(streams.healthy(0, 300, "ppo"), 200, 15.0)
    for step, values in enumerate(stream[260:], 260):
        values["kl/coef"] *= 1.01 ** (step - 259)
    alerts = streams.feed(KLControllerStuck(target=0.02), stream)
    assert [a.state for a in alerts] == ["raised", "cleared"]
    assert 260 <= alerts[1].step < 262
