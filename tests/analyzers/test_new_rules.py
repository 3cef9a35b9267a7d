"""The rules added for issue 9: reward level shifts, truncation, no learning signal, KL runaway,
a watched reward function returning NaN; plus the fixes to entropy_collapse (a baseline that
works in short and sparse logs), grad_explosion (exact zeros) and kl_spike (early blips)."""

from __future__ import annotations

import math

import pytest

from rldk_track.analyzers import (
    EntropyCollapse, GradExplosion, KLRunaway, KLSpike, NoLearningSignal, RewardNonFinite, RewardShift, Truncation,
)

SEEDS = range(5)


def with_values(stream, start, **changes):
    """``stream`` with ``metric = fn(old, t)`` from step ``start`` on (t = 1, 2, ...)."""
    out = [dict(v) for v in stream]
    for step in range(start, len(out)):
        for metric, fn in changes.items():
            out[step][metric] = fn(out[step].get(metric), step - start + 1)
    return out


# -- reward_shift ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_reward_shift_reports_a_sign_flip_on_the_second_flipped_record(streams, seed):
    stream = with_values(streams.healthy(seed, 300), 150, **{"reward/mean": lambda v, t: -v})
    (alert,) = streams.raised(streams.feed(RewardShift(), stream))
    assert (alert.rule, alert.step) == ("reward_shift/reward", 151)
    assert "sign flipped" in alert.message


@pytest.mark.parametrize("seed", SEEDS)
def test_reward_shift_reports_a_reward_scaled_by_1000_at_once(streams, seed):
    stream = with_values(streams.healthy(seed, 300), 100, **{"reward/mean": lambda v, t: 1000 * v})
    raised = streams.raised(streams.feed(RewardShift(), stream))
    assert [(a.rule, a.step) for a in raised] == [("reward_shift/reward", 101)]


def test_reward_shift_watches_each_component_under_its_own_name(streams):
    stream = with_values(streams.healthy(0, 300), 200, **{"reward/format/mean": lambda v, t: 2 * v})
    raised = streams.raised(streams.feed(RewardShift(), stream))
    assert [a.rule for a in raised] == ["reward_shift/format"] and 200 <= raised[0].step <= 203


@pytest.mark.parametrize("kind", ["grpo", "ppo"])
@pytest.mark.parametrize("seed", SEEDS)
def test_reward_shift_is_silent_on_healthy_runs(streams, seed, kind):
    assert streams.feed(RewardShift(), streams.healthy(seed, 400, kind)) == []


def test_reward_shift_clears_once_the_new_level_is_the_reference(streams):
    stream = with_values(streams.healthy(1, 300), 100, **{"reward/mean": lambda v, t: v + 2.0})
    alerts = streams.feed(RewardShift(), stream)
    assert [a.state for a in alerts] == ["raised", "cleared"] and alerts[1].step < 130


# -- truncation --------------------------------------------------------------------------------
def test_truncation_fires_when_most_completions_hit_the_cap_and_clears_after():
    rule = Truncation()
    ratios = [0.0, 0.05, 0.0, 0.6, 0.9, 1.0, 1.0, 0.1, 0.0, 0.0, 0.0]
    alerts = [(a.step, a.state) for step, r in enumerate(ratios) for a in rule.update(step, {"completions/clipped_ratio": r})]
    assert alerts == [(4, "raised"), (9, "cleared")]


def test_truncation_is_silent_on_healthy_truncation_levels():
    rule = Truncation()
    assert [a for step in range(300) for a in rule.update(step, {"length/truncated_ratio": 0.25 * (step % 2)})] == []


# -- no_learning_signal ------------------------------------------------------------------------
def test_no_learning_signal_fires_after_patience_records_of_zero_reward_spread_from_step_one():
    rule = NoLearningSignal()
    alerts = [a for step in range(1, 20) for a in rule.update(step, {"frac_reward_zero_std": 1.0, "grad_norm": 0.4})]
    assert [(a.step, a.state, a.metric) for a in alerts] == [(5, "raised", "frac_reward_zero_std")]


def test_no_learning_signal_needs_consecutive_records_and_clears_when_groups_differ_again():
    rule = NoLearningSignal()
    norms = [0.0, 0.0, 0.0, 0.5] * 5 + [0.0] * 6 + [0.7, 0.6]
    alerts = [(a.step, a.state) for step, n in enumerate(norms) for a in rule.update(step, {"grad/norm": n})]
    assert alerts == [(24, "raised"), (27, "cleared")]


def test_no_learning_signal_is_silent_on_healthy_runs(streams):
    for seed in SEEDS:
        assert streams.feed(NoLearningSignal(), streams.healthy(seed, 400)) == []


# -- kl_runaway --------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_kl_runaway_reports_kl_doubling_every_10_steps_within_20_records(streams, seed):
    stream = with_values(streams.healthy(seed, 300), 200, **{"kl/mean": lambda v, t: v * math.exp(t / 14)})
    (alert,) = streams.raised(streams.feed(KLRunaway(), stream))
    assert 200 <= alert.step < 220


def test_kl_runaway_counts_optimizer_steps_so_sparse_logging_is_judged_alike():
    rule = KLRunaway()
    alerts = [a for step in range(10, 400, 10) for a in rule.update(step, {"kl": 0.05 * 2 ** (max(0, step - 200) / 10)})]
    assert [a.state for a in alerts] == ["raised"] and 210 <= alerts[0].step <= 250


@pytest.mark.parametrize("kind", ["grpo", "ppo"])
def test_kl_runaway_is_silent_on_healthy_runs(streams, kind):
    for seed in SEEDS:
        assert streams.feed(KLRunaway(), streams.healthy(seed, 400, kind)) == []


# -- kl_spike early blips ----------------------------------------------------------------------
def test_kl_spike_ignores_blips_while_kl_is_tiny_and_is_critical_only_for_a_large_kl():
    rule = KLSpike()
    early = [0.002, 0.0015, 0.0025, 0.002, 0.0018, 0.0022, 0.002, 0.0021, 0.0019, 0.002, 0.002, 0.036, 0.002]
    assert [a for step, kl in enumerate(early) for a in rule.update(step, {"kl": kl})] == []
    (alert,) = rule.update(20, {"kl": 0.15})
    assert alert.severity == "warning"  # 75x the median, but a KL of 0.15 is no emergency
    steady = KLSpike()
    for step in range(12):
        steady.update(step, {"kl": 0.03 + 0.001 * (step % 3)})
    (alert,) = steady.update(12, {"kl": 0.5})
    assert alert.severity == "critical"  # 16x a median of 0.03, and KL itself 0.5


# -- entropy_collapse in short and sparse logs -------------------------------------------------
def test_entropy_collapse_is_seen_in_a_short_sparse_log_where_it_starts_inside_the_first_records():
    rule = EntropyCollapse()
    entropy = [3.4, 3.0, 1.2, 0.4, 0.2, 0.15, 0.15]  # logging_steps=10: the collapse starts at step 20
    alerts = [a for i, e in enumerate(entropy) for a in rule.update(10 * (i + 1), {"entropy": e})]
    assert [(a.step, a.state) for a in alerts][:1] == [(50, "raised")]


# -- grad_explosion and exact zeros ------------------------------------------------------------
def test_grad_explosion_skips_exact_zero_norms_of_zero_advantage_steps():
    rule = GradExplosion()
    norms = [1.0, 1.2, 0.9, 1.1] * 5 + [0.0] * 40 + [1.3, 1.0]
    assert [a for step, n in enumerate(norms) for a in rule.update(step, {"grad_norm": n})] == []


# -- reward_nonfinite --------------------------------------------------------------------------
def test_reward_nonfinite_names_the_function_and_clears_when_it_is_finite_again():
    rule = RewardNonFinite()
    fracs = [0.0, 0.0, 0.25, 0.5, 0.0, 0.0, 0.0]
    alerts = [a for step, f in enumerate(fracs) for a in rule.update(step, {"reward/acc/nonfinite_frac": f})]
    assert [(a.rule, a.step, a.state) for a in alerts] == [("reward_nonfinite/acc", 2, "raised"),
                                                           ("reward_nonfinite/acc", 5, "cleared")]
