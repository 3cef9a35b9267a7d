"""Clip-ratio saturation, gradient-norm explosion, loss divergence, one bad update."""

from __future__ import annotations

import pytest

from rldk_track.analyzers import ClipSaturation, GradExplosion, LossDivergence, UpdateSpike

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


# -- update spike (one bad optimizer update) ------------------------------------------------------
def logged_every(stream, k):
    """What transformers/TRL log with logging_steps=k: the mean of each block of k steps, except
    the gradient norm, which is the logging step's own; the step is the block's last."""
    out = []
    for start in range(0, len(stream) - k + 1, k):
        block = stream[start:start + k]
        row = {key: sum(v[key] for v in block) / k for key in block[0]}
        row["grad/norm"] = block[-1]["grad/norm"]
        out.append((start + k - 1, row))
    return out


def bad_update(stream, at):
    """One update too large at step ``at``: its gradient norm x40 and loss +2, then KL and entropy
    pushed up and relaxing by half each step (what benchmarks/insight injects)."""
    out = [dict(v) for v in stream]
    out[at]["grad/norm"] *= 40
    out[at]["loss/total"] += 2.0
    for t in range(6):
        out[at + t]["kl/mean"] = out[at + t]["kl/mean"] * (1 + 12 * 0.5 ** t) + 0.05 * 0.5 ** t
        out[at + t]["entropy/mean"] *= 1 + 0.6 * 0.5 ** t
    return out


def feed_logged(rule, logged):
    return [a for step, values in logged for a in rule.update(step, values)]


@pytest.mark.parametrize("k", [1, 5, 10])
@pytest.mark.parametrize("seed", SEEDS)
def test_update_spike_sees_one_bad_update_at_every_logging_rate(streams, seed, k):
    at = 301  # never a logging step at k = 5 or 10: the logged gradient norm does not show it
    logged = logged_every(bad_update(streams.healthy(seed, 400), at), k)
    (alert,) = streams.raised(feed_logged(UpdateSpike(), logged))
    assert alert.step == at + (-at - 1) % k  # the record holding the bad step
    assert (alert.rule, alert.severity) == ("update_spike", "warning")
    # at k > 1 the logged gradient norm is a normal step's: the averaged loss carries the step side
    assert alert.metric in (("loss/total", "grad/norm") if k == 1 else ("loss/total",))
    assert alert.value >= alert.threshold


@pytest.mark.parametrize("k", [1, 5, 10])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_update_spike_is_silent_on_healthy_runs(streams, seed, kind, k):
    assert feed_logged(UpdateSpike(), logged_every(streams.healthy(seed, 1000), k)) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_update_spike_wants_both_a_big_step_and_a_moved_policy(streams, seed):
    grad_only = with_values(streams.healthy(seed, 300), "grad/norm", [200], lambda s, v: 40 * v)
    kl_only = with_values(streams.healthy(seed, 300), "kl/mean", [200], lambda s, v: 20 * v)
    assert streams.feed(UpdateSpike(), grad_only) == []  # grad_explosion's
    assert streams.feed(UpdateSpike(), kl_only) == []  # kl_spike's


def test_update_spike_clears_and_skips_zero_gradient_norms(streams):
    stream = bad_update(streams.healthy(0, 300), 200)
    for values in stream[100:150]:
        values["grad/norm"] = 0.0  # GRPO steps with zero advantages: not a collapse of the norm
    alerts = streams.feed(UpdateSpike(), stream)
    assert [(a.state, a.step) for a in alerts] == [("raised", 200), ("cleared", 202)]  # clear_after=2


def test_update_spike_validates_its_options():
    with pytest.raises(ValueError):
        UpdateSpike(min_history=40, window=30)
    with pytest.raises(ValueError):
        UpdateSpike(z=0)


def test_update_spike_does_not_call_metrics_leaving_exact_zero_a_spike():
    # no learning signal (loss, KL exactly 0) that ends: a change of regime, not one bad update
    stream = [{"loss/total": 0.0, "kl/mean": 0.0, "entropy/mean": 2.0 + 0.01 * (s % 3), "grad/norm": 0.0}
              for s in range(50)]
    stream += [{"loss/total": 0.05, "kl/mean": 0.01, "entropy/mean": 2.0, "grad/norm": 1.0} for _ in range(20)]
    rule = UpdateSpike()
    assert [a for step, values in enumerate(stream) for a in rule.update(step, values)] == []
