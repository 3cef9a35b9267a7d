"""Clip-ratio saturation, gradient-norm explosion, loss divergence."""

from __future__ import annotations

import pytest

from rldk_track.analyzers import ClipSaturation, GradExplosion, LossDivergence

SEEDS = range(5)
KINDS = ["grpo", "ppo", "sft"]


def with_values(stream, key, steps, value_at):
    out = [dict(v) for v in stream]
    for step in steps:
        out[step][key] = value_at(step, out[step].get(key))
    return out


# -- clip saturation ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_clip_saturation_fires_within_its_window(streams, seed):
    stream = with_values(streams.healthy(seed, 300), "clip/ratio", range(200, 300), lambda s, v: 0.45 + v)
    (alert,) = streams.raised(streams.feed(ClipSaturation(), stream))
    assert 200 <= alert.step < 205
    assert (alert.rule, alert.metric, alert.threshold) == ("clip_saturation", "clip/ratio", 0.3)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_clip_saturation_is_silent_on_healthy_runs(streams, seed, kind):
    assert streams.feed(ClipSaturation(), streams.healthy(seed, 400, kind)) == []


def test_clip_saturation_clears_when_clipping_drops(streams):
    stream = with_values(streams.healthy(0, 300), "clip/ratio", range(200, 250), lambda s, v: 0.45 + v)
    alerts = streams.feed(ClipSaturation(), stream)
    assert [a.state for a in alerts] == ["raised", "cleared"]
    assert 250 <= alerts[1].step < 255


def test_clip_saturation_reads_legacy_ppo_clipfrac(streams):
    stream = [{"policy/clipfrac_avg": 0.5 if s >= 50 else 0.05} for s in range(100)]
    (alert,) = streams.raised(streams.feed(ClipSaturation(), stream))
    assert (alert.step, alert.metric) == (52, "policy/clipfrac_avg")  # the 5-step mean passes 0.3 at the 3rd


# -- gradient explosion ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_grad_explosion_fires_at_the_exploding_step(streams, seed, kind):
    stream = with_values(streams.healthy(seed, 300, kind), "grad/norm", [210], lambda s, v: 30 * v)
    (alert,) = streams.raised(streams.feed(GradExplosion(), stream))
    assert (alert.step, alert.metric, alert.severity) == (210, "grad/norm", "warning")
    assert alert.value > alert.threshold


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_grad_explosion_is_silent_on_healthy_runs(streams, seed, kind):
    assert streams.feed(GradExplosion(), streams.healthy(seed, 400, kind)) == []


def test_grad_explosion_that_persists_is_raised_once_and_cleared_after_recovery(streams):
    stream = with_values(streams.healthy(0, 300), "grad/norm", range(200, 260), lambda s, v: 40 * v)
    alerts = streams.feed(GradExplosion(), stream)
    assert [(a.state, a.step) for a in alerts] == [("raised", 200), ("cleared", 262)]  # clear_after=3


def test_grad_explosion_escalates_to_critical(streams):
    stream = with_values(streams.healthy(0, 300), "grad/norm", range(200, 203), lambda s, v: 40 * v * 10 ** (s - 200))
    raised = streams.raised(streams.feed(GradExplosion(), stream))
    assert [(a.step, a.severity) for a in raised] == [(200, "warning"), (201, "critical")]


def test_grad_explosion_reads_the_transformers_name(streams):
    stream = [{"grad_norm": 1.0 + 0.1 * (s % 5)} for s in range(100)]
    stream[70]["grad_norm"] = 50.0
    (alert,) = streams.raised(streams.feed(GradExplosion(), stream))
    assert (alert.step, alert.metric) == (70, "grad_norm")


# -- loss divergence ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_loss_divergence_fires_when_an_sft_loss_climbs_back_up(streams, seed):
    stream = with_values(streams.healthy(seed, 300, "sft"), "loss/total", range(200, 300),
                         lambda s, v: v + 0.05 * (s - 200))  # +5 over 100 steps
    warning, critical = streams.raised(streams.feed(LossDivergence(), stream))  # raised, then escalated
    assert 200 <= warning.step < 225  # the rolling median passes best + 0.5 * |best|
    assert (warning.metric, warning.severity, critical.severity) == ("loss/total", "warning", "critical")
    assert warning.value > warning.threshold and critical.step > warning.step


@pytest.mark.parametrize("seed", SEEDS)
def test_loss_divergence_fires_when_a_grpo_loss_jumps_off_zero(streams, seed):
    stream = with_values(streams.healthy(seed, 300), "loss/total", range(200, 300), lambda s, v: v + 0.5)
    alerts = streams.raised(streams.feed(LossDivergence(), stream))
    assert 200 <= alerts[0].step < 200 + 10  # the rolling median (window 10) moves at the 6th step
    assert len(alerts) <= 2  # raised, and at most one escalation to critical


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_loss_divergence_is_silent_on_healthy_runs(streams, seed, kind):
    assert streams.feed(LossDivergence(), streams.healthy(seed, 400, kind)) == []


def test_loss_divergence_clears_when_the_loss_comes_back_down(streams):
    stream = with_values(streams.healthy(0, 300, "sft"), "loss/total", range(200, 240), lambda s, v: v + 3.0)
    alerts = streams.feed(LossDivergence(), stream)
    assert [(a.state, a.severity) for a in alerts] == [("raised", "warning"), ("raised", "critical"), ("cleared", "critical")]
    assert 240 <= alerts[-1].step < 240 + 5 + 3
