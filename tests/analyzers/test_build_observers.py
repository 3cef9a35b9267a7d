"""build_observers: what rldk_track.init(analyzers=...) accepts."""

from __future__ import annotations

import pytest

from rldk_track.analyzers import RULES, KLSpike, build_observers


def names(observers):
    return [getattr(o, "name", type(o).__name__) for o in observers]


def test_default_builds_every_rule_fresh_each_time():
    first, second = build_observers("default"), build_observers("default")
    assert names(first) == list(RULES)
    assert all(a is not b for a, b in zip(first, second))


@pytest.mark.parametrize("spec", [None, False, "", []])
def test_nothing_builds_no_observers(spec):
    assert build_observers(spec) == []


@pytest.mark.parametrize("spec", ["kl_spike,nonfinite", ["kl_spike", "nonfinite"]])
def test_named_rules_build_only_those(spec):
    assert names(build_observers(spec)) == ["kl_spike", "nonfinite"]


def test_a_mapping_tunes_the_defaults_and_turns_rules_off():
    observers = build_observers({"kl_spike": {"z": 6}, "trends": False, "nonfinite": True})
    assert names(observers) == [n for n in RULES if n != "trends"]
    (spike,) = [o for o in observers if o.name == "kl_spike"]
    assert spike.z == 6


def test_a_list_mixes_names_options_and_ready_made_observers():
    class Custom:
        def observe(self, records):
            return []

    custom, spike = Custom(), KLSpike(ratio=5)
    observers = build_observers(["nonfinite", {"entropy_collapse": {"fraction": 0.2, "critical_fraction": 0.1}}, custom, spike])
    assert names(observers) == ["nonfinite", "entropy_collapse", "Custom", "kl_spike"]
    assert observers[2] is custom and observers[3] is spike


def test_an_unknown_rule_name_says_which_exist():
    with pytest.raises(ValueError, match="unknown analyzer 'kl_spikes'.*kl_spike"):
        build_observers(["kl_spikes"])


def test_an_unknown_option_says_which_options_the_rule_has():
    with pytest.raises(ValueError, match=r"'kl_spike' has no option 'zscore'.*\bz\b"):
        build_observers({"kl_spike": {"zscore": 6}})


def test_inconsistent_thresholds_fail_fast():
    with pytest.raises(ValueError, match="entropy_collapse"):
        build_observers({"entropy_collapse": {"fraction": 0.5}})  # above its clear_fraction 0.4


def test_a_spec_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="analyzers must be"):
        build_observers(3)
