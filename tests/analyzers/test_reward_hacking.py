"""Reward hacking signatures: reward up with KL up and entropy down; length runaway; one component runaway."""

from __future__ import annotations

import math

import pytest

from rldk_track.analyzers import RewardHacking

SEEDS = range(5)
ONSET = 200


def hacked(stream, *, kl=False, length=False, component=False):
    """From ONSET on: the reward climbs fast, with the chosen signature alongside."""
    out = [dict(v) for v in stream]
    for step, values in enumerate(out[ONSET:], ONSET):
        t = step - ONSET
        values["reward/mean"] += 0.008 * t
        if kl:
            values["kl/mean"] *= math.exp(0.04 * t)  # x7 over 50 steps
            values["entropy/mean"] *= math.exp(-0.015 * t)  # -50 % over 50 steps
        if length:
            values["length/response_mean"] *= 1 + 0.02 * t  # x2 over 50 steps
        if component:
            values["reward/format/mean"] = min(1.0, 0.3 + 0.014 * t) + (values["reward/format/mean"] - 0.3 - 0.6 * step / len(out))
            values["reward/correct/mean"] = 0.1 + 0.4 * ONSET / len(out) + (values["reward/correct/mean"] - 0.1 - 0.4 * step / len(out))
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_reward_rising_with_kl_up_and_entropy_down_fires(streams, seed):
    alerts = streams.raised(streams.feed(RewardHacking(), hacked(streams.healthy(seed, 300), kl=True)))
    assert [(a.rule, a.metric) for a in alerts] == [("reward_hacking/kl_entropy", "reward/mean")]
    assert ONSET <= alerts[0].step < ONSET + 50  # within one window of the onset
    assert "kl/mean" in alerts[0].message and "entropy/mean" in alerts[0].message


@pytest.mark.parametrize("seed", SEEDS)
def test_response_length_running_away_with_the_reward_fires(streams, seed):
    alerts = streams.raised(streams.feed(RewardHacking(), hacked(streams.healthy(seed, 300), length=True)))
    assert [(a.rule, a.metric) for a in alerts] == [("reward_hacking/length", "length/response_mean")]
    assert ONSET <= alerts[0].step < ONSET + 50
    assert alerts[0].value >= alerts[0].threshold == 1.5


@pytest.mark.parametrize("seed", SEEDS)
def test_one_reward_component_running_away_while_the_others_stay_flat_fires(streams, seed):
    alerts = streams.raised(streams.feed(RewardHacking(), hacked(streams.healthy(seed, 300), component=True)))
    assert [(a.rule, a.metric) for a in alerts] == [("reward_hacking/component", "reward/format/mean")]
    assert ONSET <= alerts[0].step < ONSET + 50
    assert "reward/correct/mean stayed flat" in alerts[0].message


@pytest.mark.parametrize("kind", ["grpo", "ppo"])
@pytest.mark.parametrize("seed", SEEDS)
def test_reward_hacking_is_silent_on_healthy_runs(streams, seed, kind):
    assert streams.feed(RewardHacking(), streams.healthy(seed, 400, kind)) == []


def test_reward_and_length_rising_together_early_in_training_is_not_flagged(streams):
    early = [dict(v) for v in streams.healthy(0, 300)]
    for step, values in enumerate(early[:50]):
        values["length/response_mean"] *= 1 + 0.03 * step  # inside the warmup
    assert streams.feed(RewardHacking(), early) == []


def test_a_lasting_signature_is_raised_once_and_cleared_when_it_stops(streams):
    healthy = streams.healthy(0, 400)
    stream = hacked(healthy, length=True)
    t = 279 - ONSET  # from step 280 on, length and reward stop climbing (the healthy noise stays)
    for values, base in zip(stream[280:], healthy[280:]):
        values["length/response_mean"] = base["length/response_mean"] * (1 + 0.02 * t)
        values["reward/mean"] = base["reward/mean"] + 0.008 * t
    alerts = streams.feed(RewardHacking(), stream)
    assert [a.state for a in alerts] == ["raised", "cleared"]
    assert 280 < alerts[1].step < 280 + 50 + 10  # once the window no longer shows the runaway


def test_reward_hacking_reads_trl_names(streams):
    renamed = {"reward/mean": "reward", "kl/mean": "kl", "entropy/mean": "entropy",
               "length/response_mean": "completions/mean_length", "reward/format/mean": "rewards/format/mean",
               "reward/correct/mean": "rewards/correct/mean"}
    stream = [{renamed.get(k, k): v for k, v in values.items()}
              for values in hacked(streams.healthy(1, 300), length=True)]
    (alert,) = streams.raised(streams.feed(RewardHacking(), stream))
    assert alert.metric == "completions/mean_length"
