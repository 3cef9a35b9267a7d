"""Statistics over one step's sample rows, without a tracker."""

from __future__ import annotations

import math

from rldk_track.analyzers.samples import (
    distinct_n,
    empty_share,
    outlier_rewards,
    repeated_ngram_share,
    reward_length_correlation,
    truncated_share,
)


def test_truncated_share_counts_completions_at_the_limit():
    assert truncated_share([8, 3, 8, 5], limit=8) == 0.5
    assert math.isnan(truncated_share([], limit=8))


def test_empty_and_whitespace_completions_are_degenerate():
    assert empty_share(["", "  \n", "ok", "fine"]) == 0.5


def test_a_looping_completion_repeats_its_ngrams():
    assert repeated_ngram_share("the cat sat on the mat") == 0.0
    assert repeated_ngram_share("go go go go go go go go") > 0.8
    assert repeated_ngram_share("too short") == 0.0


def test_a_collapsed_group_has_low_distinct_n():
    varied = ["the cat sat", "a dog ran far", "birds sing at dawn"]
    same = ["the cat sat"] * 8
    assert distinct_n(varied) == 1.0
    assert distinct_n(same) == 2 / 16


def test_a_reward_that_pays_for_length_correlates_with_it():
    lengths = [3, 10, 25, 40, 60]
    assert reward_length_correlation([n / 60 for n in lengths], lengths) > 0.99
    assert math.isnan(reward_length_correlation([1.0, None, 1.0], [1, 2, 3]))
    assert reward_length_correlation([0.1, None, 0.3, 0.5, 0.2], [1, 2, 3, 5, 2]) > 0.9


def test_outlier_rewards_are_found_by_robust_z_and_non_finite_ones_always():
    rewards = [0.5, 0.52, 0.48, 0.51, 0.49, 9.0, float("nan"), None]
    assert outlier_rewards(rewards) == [5, 6]
    assert outlier_rewards([1.0, 1.0, 1.0, 1.0, 7.0]) == [4]
