"""Post-hoc analysis shows the rules the run's sample sets too: an alert found after the fact
carries evidence rows from the sample set of its step, as a live one does (a real event log,
read back by the event-log reader, written back by ``rldk-track analyze --write``)."""

from __future__ import annotations

from pathlib import Path

from rldk_track.eventlog import read_records
from rldk_track.records import Alert

SHORT = ["ok", "fine", "short answer"]
LONG = "the answer " * 40


def log_length_hacking_run(dir: Path) -> None:
    """A run logged without analyzers: the completions get long and are truncated from step 3."""
    import rldk_track

    run = rldk_track.init(dir=dir, project="posthoc", run_id="hackrun", analyzers=None)
    for step in range(6):
        texts = SHORT if step < 3 else [*SHORT[:2], LONG + str(step)]
        run.log_samples([{"prompt": f"p{i}", "completion": t, "reward": float(len(t))} for i, t in enumerate(texts)],
                        step=step)
        run.log({"length/truncated_ratio": 0.0 if step < 3 else 0.9, "reward/mean": float(step)}, step=step)
    assert run.finish().complete


def test_a_post_hoc_alert_carries_the_evidence_rows_of_its_step(tmp_path: Path) -> None:
    from rldk_track.posthoc import analyze_run
    from rldk_track.readers import load_runs

    log_length_hacking_run(tmp_path)
    runset = load_runs(tmp_path)
    assert runset.alerts.empty  # nothing was found live: no analyzers ran
    (name,) = runset.run_names
    raised = [r for r in analyze_run(runset, name, "truncation") if isinstance(r, Alert) and r.state == "raised"]
    (alert,) = raised
    evidence = alert.evidence
    assert evidence is not None and (evidence.step, evidence.by) == (alert.step, "length")
    assert evidence.as_dicts()[0]["completion"] == LONG + str(alert.step)  # the longest row first
    assert {"prompt", "completion", "reward"} <= set(evidence.columns)


def test_analyze_write_puts_the_evidence_into_the_event_log(tmp_path: Path) -> None:
    from rldk_track.cli import main

    log_length_hacking_run(tmp_path)
    assert main(["analyze", str(tmp_path), "--analyzers", "truncation", "--write", "--no-sync"]) == 1
    alerts = [r for _, r in read_records(tmp_path / "events" / "hackrun.jsonl") if isinstance(r, Alert)]
    (alert,) = [a for a in alerts if a.state == "raised"]
    assert alert.rule == "truncation" and alert.evidence is not None
    assert alert.evidence.step == alert.step and len(alert.evidence.rows) > 0


def test_analyze_prints_each_alerts_evidence_in_text_and_json(tmp_path: Path, capsys) -> None:
    import json

    from rldk_track.cli import main
    from rldk_track.records import Evidence

    log_length_hacking_run(tmp_path)
    assert main(["analyze", str(tmp_path), "--analyzers", "truncation", "--json", "--no-progress"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (raised,) = [a for a in lines if a["state"] == "raised"]
    evidence = Evidence.from_json(raised["evidence"])  # the alert line's JSON form
    assert (raised["rule"], evidence.step, evidence.by, evidence.name) == ("truncation", raised["step"], "length", "samples")
    assert evidence.as_dicts()[0]["completion"] == LONG + str(raised["step"])
    assert all("evidence" in a for a in lines)  # null where an alert has none: one shape

    assert main(["analyze", str(tmp_path), "--analyzers", "truncation", "--no-progress"]) == 1
    text = capsys.readouterr().out
    assert f"evidence: {len(evidence.rows)} rows of 'samples' at step {raised['step']}, length first" in text
