"""Every default rule takes bad input without raising or flooding: NaN, +-Inf, missing keys, keys
that appear late, steps that go backwards, constant or exactly zero metrics, logging every step
or every 50."""

from __future__ import annotations

import math

import pytest

from rldk_track.analyzers import RULES, build_observers

KEYS = ("reward", "reward_std", "frac_reward_zero_std", "kl", "entropy", "grad_norm", "loss",
        "completions/mean_length", "completions/clipped_ratio", "rewards/a/mean", "rewards/b/mean", "beta")


def healthy(step: int) -> dict[str, float]:
    wiggle = math.sin(step * 1.7) * 0.05
    return {"reward": 0.5 + wiggle, "reward_std": 0.3 + wiggle, "frac_reward_zero_std": 0.1, "kl": 0.02 + wiggle / 10,
            "entropy": 2.0 + wiggle, "grad_norm": 1.0 + wiggle, "loss": 0.1 + wiggle, "completions/mean_length": 20 + wiggle,
            "completions/clipped_ratio": 0.0, "rewards/a/mean": 0.3 + wiggle, "rewards/b/mean": 0.2 - wiggle, "beta": 0.04}


CASES = {
    "nan_everywhere": lambda s: {k: math.nan for k in KEYS},
    "inf_and_minus_inf": lambda s: {k: (math.inf if s % 2 else -math.inf) for k in KEYS},
    "nan_now_and_then": lambda s: {**healthy(s), **({"kl": math.nan, "reward": math.inf} if s % 7 == 0 else {})},
    "missing_keys": lambda s: {k: v for i, (k, v) in enumerate(healthy(s).items()) if (i + s) % 3},
    "keys_appear_late": lambda s: healthy(s) if s > 150 else {"loss": 0.1},
    "constant": lambda s: {k: 0.5 for k in KEYS},
    "exactly_zero": lambda s: {k: 0.0 for k in KEYS},
    "empty": lambda s: {},
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("steps", [range(200), range(0, 10_000, 50), [*range(100), *range(50, 150)]],
                         ids=["every_step", "every_50", "backwards"])
def test_no_rule_raises_or_floods_on_bad_input(case, steps):
    for rule in build_observers("default"):
        raised = [a for step in steps for a in rule.update(step, CASES[case](step)) if a.state == "raised"]
        rule.finish()
        if rule.name == "nonfinite" and case == "nan_now_and_then":
            # a NaN that comes back after the metrics were finite again is a new episode each time
            assert {a.step % 7 for a in raised} == {0}
            continue
        assert len(raised) <= 3, (rule.name, case, [a.rule for a in raised])


def test_every_rule_is_in_the_default_set():
    assert {type(r).name for r in build_observers("default")} == set(RULES)
