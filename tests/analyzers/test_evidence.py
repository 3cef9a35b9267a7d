"""Evidence on alerts, without a tracker: a rule shown sample sets on its feed puts the most
telling rows of the alert's step on each raised alert, chosen per rule; memory stays bounded;
odd cells never raise."""

from __future__ import annotations

import json
import math

from rldk_track.alerts import alert_cells, alert_json, alert_row
from rldk_track.analyzers import EntropyCollapse, RewardNonFinite, Truncation, build_observers
from rldk_track.analyzers.evidence import EVIDENCE_ROWS, KEEP_PER_NAME, MAX_NAMES, SampleMemory, choose, evidence_by
from rldk_track.records import Alert, Evidence, Metrics, Samples, from_json, to_json

COLUMNS = ("prompt", "completion", "reward", "reward/fmt")


def sample_set(step: int, completions: list[str], rewards: list[object] | None = None, name: str = "completions",
               fmt: list[object] | None = None) -> Samples:
    rewards = rewards if rewards is not None else [0.5] * len(completions)
    fmt = fmt if fmt is not None else [0.0] * len(completions)
    rows = tuple((f"p{i}", c, r, f) for i, (c, r, f) in enumerate(zip(completions, rewards, fmt)))
    return Samples(-1, 0.0, step, COLUMNS, rows, name)


def truncating(step: int) -> Metrics:
    return Metrics(-1, 0.0, step, {"length/truncated_ratio": 0.9})


def raised(records: list) -> list[Alert]:
    return [r for r in records if isinstance(r, Alert) and r.state == "raised"]


def test_a_truncation_alert_carries_the_longest_completions_of_its_step():
    rule = Truncation()
    texts = ["a", "a b c d e f", "a b", "a b c d e f g h", "a b c", "a b c d"]
    out = rule.observe([sample_set(1, texts), truncating(1), sample_set(2, texts[::-1]), truncating(2)])
    (alert,) = raised(out)
    evidence = alert.evidence
    assert (evidence.name, evidence.step, evidence.by) == ("completions", 2, "length")
    assert evidence.columns == ("row", *COLUMNS, "length")
    assert [row["completion"] for row in evidence.as_dicts()] == ["a b c d e f g h", "a b c d e f", "a b c d"]
    assert [row["row"] for row in evidence.as_dicts()] == [2, 4, 0]  # positions in the step-2 set
    assert [row["length"] for row in evidence.as_dicts()] == [15.0, 11.0, 7.0]


def test_samples_of_the_alerts_step_later_in_the_same_batch_are_its_evidence():
    rule = Truncation()
    out = rule.observe([truncating(1), sample_set(1, ["x"] * 4), truncating(2), sample_set(2, ["long one here", "y"])])
    assert raised(out)[0].evidence.step == 2


def test_without_samples_at_its_step_the_nearest_earlier_set_is_the_evidence():
    rule = Truncation()
    out = rule.observe([sample_set(1, ["abc", "a"]), truncating(1), truncating(2), sample_set(3, ["later"])])
    assert raised(out)[0].evidence.step == 1
    assert Truncation().observe([truncating(1), truncating(2)])[0].evidence is None  # no samples: no evidence


def test_a_batch_with_many_steps_still_gives_each_alert_its_own_step():
    rule = Truncation()
    batch = []
    for step in range(1, 20):
        batch += [truncating(step), sample_set(step, ["a b", "a"])]
    assert raised(rule.observe(batch))[0].evidence.step == 2


def test_each_rule_picks_its_own_rows():
    record = sample_set(3, ["go go go go go go", "a fine answer here", "short", "go go go go"],
                        rewards=[0.1, 0.9, 0.5, float("nan")], fmt=[0.0, float("inf"), 0.0, 0.0])
    assert [r["completion"] for r in choose(record, "reward").as_dicts()] == ["a fine answer here", "short", "go go go go go go"]
    repeated = choose(record, "repetition").as_dicts()
    assert repeated[0]["completion"] == "go go go go go go" and repeated[0]["repeated_3grams"] == 0.75
    assert [r["completion"] for r in choose(record, "nonfinite_reward").as_dicts()] == ["a fine answer here", "go go go go"]
    assert [r["row"] for r in choose(record, "nonfinite_reward", "reward/fmt/nonfinite_frac").as_dicts()] == [1]
    assert [r["row"] for r in choose(record, "reward", "rewards/fmt/mean").as_dicts()][:1] == [0]


def test_rules_are_mapped_to_a_measure_and_others_carry_no_evidence():
    assert evidence_by("truncation") == "length"
    assert evidence_by("reward_hacking/length") == "length"
    assert evidence_by("reward_hacking/kl_entropy") == "reward"
    assert evidence_by("reward_nonfinite/fmt") == "nonfinite_reward"
    assert evidence_by("entropy_collapse") == "repetition"
    assert evidence_by("kl_spike") is None
    memory = SampleMemory()
    memory.see(sample_set(1, ["a"]))
    (alert,) = memory.attach([Alert(-1, 0.0, 1, "kl_spike", "warning", "KL")])
    assert alert.evidence is None


def test_a_cleared_alert_carries_no_evidence():
    rule = Truncation()
    batch = [sample_set(1, ["a b"]), truncating(1), truncating(2)]
    batch += [Metrics(-1, 0.0, s, {"length/truncated_ratio": 0.0}) for s in range(3, 7)]
    cleared = [a for a in rule.observe(batch) if a.state == "cleared"]
    assert cleared and all(a.evidence is None for a in cleared)


def test_an_entropy_collapse_shows_the_most_repeated_completions():
    rule = EntropyCollapse()
    texts = ["the cat sat on the mat", "no no no no no no no", "a dog", "no no no no no no no"]
    batch = [Metrics(-1, 0.0, s, {"entropy/mean": 2.0}) for s in range(3)]
    batch += [sample_set(4, texts)] + [Metrics(-1, 0.0, s, {"entropy/mean": 0.01}) for s in range(4, 8)]
    (alert,) = raised(rule.observe(batch))
    assert [r["completion"] for r in alert.evidence.as_dicts()][:2] == ["no no no no no no no"] * 2


def test_a_nan_reward_alert_shows_the_rows_with_nan_rewards():
    rule = RewardNonFinite()
    record = sample_set(5, ["ok", "broken", "fine"], rewards=[0.5, 0.5, 0.5], fmt=[1.0, float("nan"), 0.0])
    (alert,) = raised(rule.observe([record, Metrics(-1, 0.0, 5, {"reward/fmt/nonfinite_frac": 0.33})]))
    assert [r["completion"] for r in alert.evidence.as_dicts()] == ["broken"]


def test_evidence_holds_a_few_rows_with_long_text_cut():
    record = sample_set(1, ["x" * 5000] + ["y"] * 10)
    evidence = choose(record, "length")
    assert len(evidence.rows) == EVIDENCE_ROWS
    assert evidence.as_dicts()[0]["completion"].startswith("x" * 1000)
    assert "5000 characters" in evidence.as_dicts()[0]["completion"]


def test_memory_keeps_the_last_sets_of_a_bounded_number_of_names():
    memory = SampleMemory()
    for name in range(MAX_NAMES + 3):
        for step in range(5):
            memory.see(sample_set(step, ["a"], name=f"set{name}"))
    kept = memory.latest(10)
    assert len(kept) == MAX_NAMES * KEEP_PER_NAME
    assert {s.name for s in kept} == {f"set{n}" for n in range(3, MAX_NAMES + 3)}
    memory.see(sample_set(9, [], name="empty"))  # a set without rows is not remembered
    assert "empty" not in {s.name for s in memory.latest(10)}


def test_odd_cells_never_raise_and_give_no_rows_to_measure():
    record = Samples(-1, 0.0, 1, ("completion", "reward"), ((None, None), (3, "high"), ("\ufffd", math.nan)), "s")
    assert [r["row"] for r in choose(record, "length").as_dicts()] == [2]
    assert choose(record, "reward") is None
    assert choose(Samples(-1, 0.0, 1, ("value",), ((1,),), "s"), "repetition") is None
    for by in ("length", "reward", "repetition", "nonfinite_reward", "reward_outlier"):
        choose(record, by)


def test_the_alert_json_form_holds_the_evidence_and_round_trips():
    evidence = Evidence("completions", 2, "length", ("row", "completion", "length"), ((3, "long", 4.0),))
    alert = Alert(7, 1.5, 2, "truncation", "warning", "cut", evidence=evidence)
    line = to_json(alert, "run")
    assert line["evidence"] == {"name": "completions", "step": 2, "by": "length",
                                "columns": ["row", "completion", "length"], "rows": [[3, "long", 4.0]]}
    assert from_json(json.loads(json.dumps(line))) == alert
    assert to_json(Alert(8, 1.5, 2, "kl_spike", "warning", "KL"), "run")["evidence"] is None
    assert alert_row(alert_json(alert))["evidence"] == line["evidence"]
    cells = alert_cells(alert_json(alert))  # a tracker table keeps it as JSON text
    assert json.loads(cells[-1]) == line["evidence"] and alert_row(dict(zip(alert_row({}), cells)))["evidence"] == line["evidence"]


def test_every_default_rule_keeps_its_alerts_as_they_were_when_no_samples_are_logged():
    for rule in build_observers("default"):
        for step in range(30):
            for alert in rule.observe([Metrics(-1, 0.0, step, {"length/truncated_ratio": 1.0, "kl": float("nan")})]):
                assert alert.evidence is None


def test_bad_samples_through_a_run_never_raise_and_the_alert_still_shows_its_rows(tmp_path):
    import rldk_track
    from rldk_track.readers import load_runs

    run = rldk_track.init(dir=tmp_path, analyzers="default")
    bad = [{"prompt": b"\xff\xfe", "completion": "lone \ud800 surrogate " * 3, "reward": None},
           {"prompt": "p", "completion": b"bytes \xff cut", "reward": math.nan},
           {"prompt": "p", "completion": None, "reward": math.inf},
           {"prompt": "p", "completion": 42, "reward": "high"},
           {"prompt": "p", "completion": "x" * 1_000_000, "reward": 0.5}]
    for step in range(1, 4):
        run.log_samples(bad * 4, step=step, name="completions")
        run.log({"length/truncated_ratio": 1.0, "reward/fmt/nonfinite_frac": 0.2}, step=step)
    assert run.finish().complete
    alerts = {a["rule"]: a for a in load_runs(tmp_path).alerts.to_dict("records")}
    truncation = alerts["truncation"]["evidence"]
    top = dict(zip(truncation["columns"], truncation["rows"][0]))
    assert top["completion"].startswith("x" * 1000) and top["length"] == 4000 + len(" …[truncated by rldk_track: 1000000 characters]")
    nan_rows = alerts["reward_nonfinite/fmt"]["evidence"]["rows"]  # no reward/fmt column: the reward column
    assert {dict(zip(alerts["reward_nonfinite/fmt"]["evidence"]["columns"], r))["completion"] for r in nan_rows} >= {
        "bytes \ufffd cut", None}
