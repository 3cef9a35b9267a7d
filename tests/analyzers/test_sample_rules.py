"""The sample-set rules, without a tracker, on a small labelled set: healthy-looking sample sets
raise nothing, a length-hacking run, degenerate outputs and an outlying reward each raise their
rule with evidence; metrics say nothing to these rules; bad cells never raise."""

from __future__ import annotations

import math
import random

import pytest

from rldk_track.analyzers import DegenerateOutputs, LengthHacking, RewardOutliers, build_observers
from rldk_track.records import Alert, Metrics, Samples

WORDS = ("the model answers the question with a short and clear reason about numbers sets and sums "
         "while each step adds one more fact to what was said before").split()
SAMPLE_RULES = (LengthHacking, DegenerateOutputs, RewardOutliers)


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def healthy_set(step: int, rng: random.Random, rows: int = 32) -> Samples:
    """Varied lengths, a reward that does not follow them (a correctness-like score with noise)."""
    out = []
    for i in range(rows):
        completion = text(rng, rng.randint(8, 60))
        out.append((f"prompt {i % 8}", completion, rng.choice((0.2, 0.8)) + rng.gauss(0, 0.1)))
    return Samples(-1, 0.0, step, ("prompt", "completion", "reward"), tuple(out), "completions")


def length_hacking_set(step: int, rng: random.Random, rows: int = 32, cap: int = 64) -> Samples:
    """Most completions run to the cap, and the reward grows with length."""
    out = []
    for i in range(rows):
        words = cap if rng.random() < 0.6 else rng.randint(8, cap - 1)
        completion = text(rng, words)
        out.append((f"prompt {i % 8}", completion, len(completion) / 100 + rng.gauss(0, 0.05), words))
    return Samples(-1, 0.0, step, ("prompt", "completion", "reward", "completion_length"), tuple(out), "completions")


def run(records: list, rules=None) -> list[Alert]:
    alerts = []
    for rule in rules or [cls() for cls in SAMPLE_RULES]:
        for record in records:
            alerts += [a for a in rule.observe([record]) if isinstance(a, Alert)]
    return alerts


@pytest.mark.parametrize("seed", range(10))
def test_healthy_looking_sample_sets_raise_nothing(seed):
    rng = random.Random(seed)
    assert run([healthy_set(step, rng) for step in range(40)]) == []


@pytest.mark.parametrize("seed", range(10))
def test_a_length_hacking_run_raises_length_hacking_at_the_second_sampled_step(seed):
    rng = random.Random(seed)
    alerts = run([length_hacking_set(step, rng) for step in range(10)], [LengthHacking()])
    assert [(a.rule, a.step, a.state) for a in alerts] == [("length_hacking", 1, "raised")]
    rows = alerts[0].evidence.as_dicts()
    assert alerts[0].evidence.by == "length" and len(rows) == 3
    assert all(row["completion_length"] == 64 for row in rows)  # the evidence is at the cap


def test_completions_piled_at_the_cap_that_earn_more_raise_it_without_a_correlation():
    rows = [(f"p{i}", "word " * 64, 1.0, 64) for i in range(12)] + [(f"q{i}", "word " * 10, 0.2, 10) for i in range(4)]
    record = Samples(-1, 0.0, 0, ("prompt", "completion", "reward", "completion_length"), tuple(rows), "c")
    rule = LengthHacking(correlation=1.0)  # out of reach: only the cap signal can fire
    alerts = run([record, record], [rule])
    assert [a.rule for a in alerts] == ["length_hacking"] and "stop at the length cap (64)" in alerts[0].message


def test_a_length_hacking_episode_clears_once_reward_stops_following_length():
    rng = random.Random(0)
    records = [length_hacking_set(s, rng) for s in range(3)] + [healthy_set(s, rng) for s in range(3, 9)]
    assert [a.state for a in run(records, [LengthHacking()])] == ["raised", "cleared"]


def test_looping_or_empty_completions_raise_degenerate_outputs_with_the_most_repeated_rows():
    rng = random.Random(1)
    loops = [(f"p{i}", "and then " * 20 if i % 2 else text(rng, 30), 0.5) for i in range(16)]
    record = Samples(-1, 0.0, 0, ("prompt", "completion", "reward"), tuple(loops), "c")
    (alert,) = run([record, record], [DegenerateOutputs()])
    assert alert.rule == "degenerate_outputs" and "loop" in alert.message
    assert all(r["completion"].startswith("and then and then") for r in alert.evidence.as_dicts())
    empty = Samples(-1, 0.0, 0, ("completion",), tuple(("",) if i < 10 else ("some words here",) for i in range(16)), "c")
    assert "empty" in run([empty, empty], [DegenerateOutputs()])[0].message


def test_a_collapsed_group_that_says_one_thing_raises_degenerate_outputs():
    same = Samples(-1, 0.0, 0, ("completion",), tuple(("the answer is four because two and two",) for _ in range(16)), "c")
    (alert,) = run([same, same], [DegenerateOutputs()])
    assert "distinct-2" in alert.message


def test_one_reward_far_above_the_step_raises_reward_outliers_and_shows_it():
    rng = random.Random(2)
    rows = [(f"p{i}", text(rng, 20), rng.gauss(0.5, 0.05)) for i in range(31)] + [("p31", "exploit!!!", 9.0)]
    record = Samples(-1, 0.0, 0, ("prompt", "completion", "reward"), tuple(rows), "c")
    (alert,) = run([record], [RewardOutliers()])
    top = alert.evidence.as_dicts()[0]
    assert alert.evidence.by == "reward_outlier" and top["completion"] == "exploit!!!" and top["reward_z"] > 6


def test_sparse_rewards_bimodal_rewards_and_low_penalties_are_not_outliers():
    rng = random.Random(3)
    sparse = [(text(rng, 10), 1.0 if i < 3 else 0.0) for i in range(32)]
    bimodal = [(text(rng, 10), 2.0 + rng.gauss(0, 0.01) if i < 8 else 0.5 + rng.gauss(0, 0.01)) for i in range(32)]
    penalty = [(text(rng, 10), -10.0 if i == 0 else 0.5 + rng.gauss(0, 0.05)) for i in range(32)]
    records = [Samples(-1, 0.0, s, ("completion", "reward"), tuple(rows), "c")
               for s, rows in enumerate((sparse, bimodal, penalty))]
    assert run(records, [RewardOutliers()]) == []


def test_metrics_say_nothing_to_the_sample_rules():
    for cls in SAMPLE_RULES:
        rule = cls()
        assert rule.update(0, {"reward": 1.0, "completion_length": 64.0, "r": 1.0, "z": 99.0}) == []
        assert rule.observe([Metrics(-1, 0.0, s, {"reward": float(s), "length/response_mean": 10.0 * s}) for s in range(50)]) == []


def test_bad_cells_never_raise():
    odd = (None, math.nan, math.inf, -math.inf, "", "\ufffd\ufffd", 7, True, "[1, 2]")
    rows = tuple((odd[i % len(odd)], odd[(i * 3) % len(odd)], odd[(i * 5) % len(odd)]) for i in range(40))
    for columns in (("completion", "reward", "completion_length"), ("prompt", "reward", "value"), ("x", "y", "z")):
        record = Samples(-1, 0.0, 0, columns, rows, "odd")
        for rule in build_observers("length_hacking,degenerate_outputs,reward_outliers"):
            rule.observe([record, record, Samples(-1, 0.0, 1, (), (), "empty")])


def test_the_sample_rules_are_default_rules_with_options():
    names = {type(o).__name__ for o in build_observers("default")}
    assert {"LengthHacking", "DegenerateOutputs", "RewardOutliers"} <= names
    (rule,) = build_observers({"length_hacking": {"correlation": 0.9}, **{n: False for n in _other_rules()}})
    assert rule.correlation == 0.9


def _other_rules() -> list[str]:
    from rldk_track.analyzers import RULES

    return [n for n in RULES if n != "length_hacking"]
