"""The analyzers in a real run: rldk_track.init(analyzers="default") puts their alerts in the event log."""

from __future__ import annotations

import math

import rldk_track
from rldk_track.analyzers import KLSpike
from rldk_track.eventlog import read_records
from rldk_track.layout import RunLayout

PLAIN_NAMES = {"reward/mean": "reward", "kl/mean": "kl", "entropy/mean": "entropy", "grad/norm": "grad_norm",
               "loss/total": "loss"}


def plain_loop_run(streams):
    """A healthy run under a plain loop's names, with a KL spike at 120, a NaN gradient norm at
    200 and a gradient explosion at 250."""
    stream = [{PLAIN_NAMES.get(k, k): v for k, v in values.items()} for values in streams.healthy(0, 300)]
    stream[120]["kl"] *= 8
    stream[200]["grad_norm"] = math.nan
    stream[250]["grad_norm"] *= 40
    return stream


def logged(tmp_path, stream, analyzers="default"):
    with rldk_track.init(dir=tmp_path, analyzers=analyzers) as run:
        for step, values in enumerate(stream):
            run.log(values, step=step)
    return [record for _, record in read_records(RunLayout(tmp_path, run.id).event_log)]


def test_default_analyzers_log_their_alerts_at_the_steps_they_fire(tmp_path, streams):
    records = logged(tmp_path, plain_loop_run(streams))
    alerts = [r for r in records if r.kind == "alert" and r.severity != "info"]
    alerts.sort(key=lambda a: a.step)  # the log thread groups one batch's alerts by rule
    assert [(a.rule, a.state, a.step, a.metric) for a in alerts] == [
        ("kl_spike", "raised", 120, "kl"),
        ("kl_spike", "cleared", 122, "kl"),
        ("nonfinite", "raised", 200, "grad_norm"),
        ("nonfinite", "cleared", 201, None),
        ("grad_explosion", "raised", 250, "grad_norm"),
        ("grad_explosion", "cleared", 253, "grad_norm"),
    ]
    metrics = {r.step: r for r in records if r.kind == "metrics"}
    for alert in alerts:  # logged right after the record that triggered it, with its time
        assert alert.wall_time == metrics[alert.step].wall_time
        assert alert.seq > metrics[alert.step].seq


def test_end_of_run_reports_come_before_the_run_ends(tmp_path, streams):
    records = logged(tmp_path, plain_loop_run(streams))
    assert records[-1].kind == "run_end"
    reports = [r for r in records if r.kind == "alert" and r.severity == "info"]
    assert {r.rule for r in reports} == {"trends", "reward_reliability/report"}
    assert all(r.step == 299 for r in reports)
    (summary_a, summary_b) = [r for r in records if r.kind == "summary"]
    summary = {**summary_a.values, **summary_b.values}
    assert summary["trend/reward/slope"] > 0 and summary["trend/entropy/slope"] < 0
    assert 0 <= summary["reward_reliability/saturation"] <= 1


def test_a_rule_that_breaks_does_not_silence_the_others(tmp_path, streams, caplog):
    class Broken(KLSpike):
        name = "broken"

        def check(self, step, values):
            raise RuntimeError("analyzer bug")

    records = logged(tmp_path, plain_loop_run(streams), analyzers=["nonfinite", Broken()])
    assert [(r.rule, r.step) for r in records if r.kind == "alert"] == [("nonfinite", 200), ("nonfinite", 201)]
    assert "analyzer bug" in caplog.text
