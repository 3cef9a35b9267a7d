"""``rldk-track compare / analyze / doctor / ui`` end to end, in a temporary directory."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import rldk_track
from rldk_track.cli import main
from rldk_track.readers import load_runs


def log_run(dir: Path, name: str, backends: list[str], reward_offset: float = 0.0, pathology: bool = False,
            mlflow_uri: str | None = None, steps: int = 120) -> rldk_track.Run:
    """A GRPO-shaped run; with ``pathology`` a KL spike at step 60 and a NaN loss at step 90."""
    rng = random.Random(name)
    run = rldk_track.init(backend=backends, dir=dir, project="cli", run_name=name, config={"lr": 1e-6},
                          mlflow={"tracking_uri": mlflow_uri} if mlflow_uri else None)
    for step in range(steps):
        run.log({
            "reward/mean": reward_offset + 0.4 + 0.1 * rng.random(),
            "kl/mean": 0.02 + 0.002 * rng.random() + (0.6 if pathology and step == 60 else 0.0),
            "loss/total": math.nan if pathology and step == 90 else 1.0 - 0.001 * step,
        }, step=step)
    run.finish()
    return run


@pytest.fixture
def two_runs(tmp_path):
    log_run(tmp_path, "baseline", ["jsonl"])
    log_run(tmp_path, "tuned", ["jsonl"], reward_offset=0.2)
    return tmp_path


def test_compare_prints_a_table_with_verdicts(two_runs, capsys):
    assert main(["compare", str(two_runs), "--metric", "reward/mean", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "baseline: baseline" in out and "(baseline)" in out
    assert "tuned higher, p<0.001" in out


def test_compare_writes_json_html_and_a_plot(two_runs, tmp_path, capsys):
    assert main(["compare", str(two_runs), "-m", "reward/mean", "-m", "kl/mean", "--format", "json",
                 "--baseline", "tuned", "--plot", str(tmp_path / "curves.png"), "--no-progress"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["baseline"] == "tuned" and {t["run"] for t in data["tests"]} == {"baseline"}
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["compare", str(two_runs), "--format", "html", "-o", str(tmp_path / "r.html"), "--no-progress"]) == 0
    assert "data:image/png;base64," in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_the_html_report_shows_the_top_samples_each_run_recorded(tmp_path):
    for name, best in (("baseline", "<b>bold</b> answer"), ("tuned", "tuned answer")):
        run = rldk_track.init(backend=["jsonl", "tensorboard"], dir=tmp_path / name, project="cli", run_name=name)
        for step in range(40):
            run.log({"reward/mean": 0.4 + 0.01 * step}, step=step)
            if step % 20 == 19:
                run.log_samples({"completion": [f"step {step} low", best if step == 39 else "stale", "mid"],
                                 "reward": [0.1, 0.9, 0.5]}, step=step, name="completions")
        run.finish()
    out = tmp_path / "r.html"
    assert main(["compare", str(tmp_path / "baseline"), f"tensorboard://{tmp_path / 'tuned' / 'tensorboard'}",
                 "--format", "html", "-o", str(out), "--no-progress"]) == 0
    section = out.read_text(encoding="utf-8").split("<h2>Top samples</h2>", 1)[1].split("<h2>", 1)[0]
    assert section.count("completions at step 39 (highest reward first)") == 2
    assert "&lt;b&gt;bold&lt;/b&gt; answer" in section and "<b>bold" not in section and "tuned answer" in section
    assert section.index("answer") < section.index("mid") < section.index("step 39 low") and "stale" not in section


def test_compare_finds_a_canonical_metric_by_its_trl_name(two_runs, capsys):
    """The TRL callback records ``reward`` as ``reward/mean`` only; ``--metric reward`` still works."""
    assert main(["compare", str(two_runs), "--metric", "reward", "--format", "json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == ["reward/mean"]


def test_compare_exits_2_on_bad_input_with_a_message(two_runs, capsys):
    assert main(["compare", str(two_runs), "--metric", "rewrad", "--no-progress"]) == 2
    assert "no run logged 'rewrad'" in capsys.readouterr().err
    assert main(["compare", str(two_runs / "missing"), "--no-progress"]) == 2
    assert main(["compare", str(two_runs), "--last", "0%", "--no-progress"]) == 2
    assert main(["compare", str(two_runs), "--threshold", "reward/mean", "--no-progress"]) == 2


def test_compare_exits_1_when_a_run_lacks_a_metric(two_runs, capsys):
    run = rldk_track.init(dir=two_runs, run_name="partial")
    run.log({"kl/mean": 0.1}, step=0)
    run.finish()
    assert main(["compare", str(two_runs), "-m", "reward/mean", "-m", "kl/mean", "--no-progress"]) == 1
    assert "reward/mean in partial" in capsys.readouterr().err


def test_compare_attaches_its_report_to_a_run_and_its_trackers(tmp_path, capsys):
    log_run(tmp_path, "baseline", ["jsonl", "tensorboard"])
    log_run(tmp_path, "tuned", ["jsonl", "tensorboard"], reward_offset=0.2)
    assert main(["compare", str(tmp_path), "-m", "reward/mean", "--attach", "tuned", "--no-progress"]) == 0
    assert "report attached to tuned" in capsys.readouterr().err
    copy = tmp_path / "tensorboard" / "tuned" / "artifacts" / "rldk" / "compare.html"
    assert "tuned higher" in copy.read_text(encoding="utf-8")
    assert load_runs(tmp_path).runs.loc["tuned", "status"] == "success"


def test_analyze_prints_alerts_and_exits_1(tmp_path, capsys):
    log_run(tmp_path, "sick", ["jsonl"], pathology=True)
    assert main(["analyze", str(tmp_path), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "kl_spike" in out and "step     60" in out and "nonfinite" in out


def test_analyze_json_lines_carry_each_alert(tmp_path, capsys):
    log_run(tmp_path, "sick", ["jsonl"], pathology=True)
    main(["analyze", str(tmp_path), "--json", "--analyzers", "nonfinite", "--no-progress"])
    alerts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(a["rule"], a["step"], a["state"]) for a in alerts] == [("nonfinite", 90, "raised"), ("nonfinite", 91, "cleared")]


def test_analyze_healthy_run_exits_0(tmp_path, capsys):
    log_run(tmp_path, "fine", ["jsonl"])
    assert main(["analyze", str(tmp_path), "--analyzers", "kl_spike,nonfinite", "--no-progress"]) == 0
    assert "fine: no new alerts" in capsys.readouterr().out


def test_analyze_write_appends_to_the_event_log_and_syncs_the_trackers(tmp_path, capsys):
    log_run(tmp_path, "sick", ["jsonl", "tensorboard"], pathology=True)
    assert main(["analyze", str(tmp_path), "--write", "--no-progress"]) == 1
    assert "synced: tensorboard: done" in capsys.readouterr().err
    runs = load_runs(tmp_path)
    assert {"kl_spike", "nonfinite"} <= set(runs.alerts["rule"]) and runs.runs.loc["sick", "status"] == "success"
    board = load_runs(tmp_path / "tensorboard")
    assert board.alerts[["rule", "step", "state"]].equals(runs.alerts[["rule", "step", "state"]])
    assert board.runs.iloc[0]["status"] == "success"
    # the alerts are the run's now: analyzing again finds nothing new and writes nothing, and the
    # run is still judged by them
    log = next((tmp_path / "events").glob("*.jsonl"))
    size = log.stat().st_size
    assert main(["analyze", str(tmp_path), "--write", "--no-progress"]) == 1
    assert "sick: no new alerts; it already holds kl_spike (critical), nonfinite (critical)" in capsys.readouterr().out
    assert log.stat().st_size == size


def test_analyze_write_tags_an_mlflow_run_and_keeps_its_status(tmp_path, capsys):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    log_run(tmp_path / "runs", "sick", ["mlflow"], pathology=True, mlflow_uri=uri)
    assert main(["analyze", "mlflow://cli/sick", "--tracking-uri", uri, "--write", "--analyzers", "kl_spike",
                 "--no-progress"]) == 1
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cli").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["rldk.alert.kl_spike"] == "cleared" and run.data.tags["rldk.health"] == "ok"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "alerts/count")] == [60]
    assert main(["analyze", "mlflow://cli/sick", "--tracking-uri", uri, "--analyzers", "kl_spike", "--no-progress"]) == 1
    assert "no new alerts; it already holds kl_spike" in capsys.readouterr().out


def test_analyze_write_adds_alerts_to_a_tensorboard_run(tmp_path, capsys):
    log_run(tmp_path, "sick", ["tensorboard"], pathology=True)
    board = tmp_path / "tensorboard"
    assert main(["analyze", str(board), "--write", "--analyzers", "nonfinite", "--no-progress"]) == 1
    runs = load_runs(board)
    assert [(a.rule, a.step, a.state) for a in runs.alerts.itertuples()] == [("nonfinite", 90, "raised"), ("nonfinite", 91, "cleared")]
    assert runs.runs.iloc[0]["status"] == "success" and len(runs.frame) == 3 * 120
    assert main(["analyze", str(board), "--write", "--analyzers", "nonfinite", "--no-progress"]) == 1
    assert "no new alerts; it already holds nonfinite" in capsys.readouterr().out


def test_analyze_cannot_write_to_a_wandb_run_and_says_why(tmp_path, capsys):
    log_run(tmp_path, "sick", ["wandb"], pathology=True, steps=95)
    assert main(["analyze", str(tmp_path / "wandb"), "--write", "--analyzers", "nonfinite", "--no-progress"]) == 1
    assert "W&B run files cannot be extended" in capsys.readouterr().err


def test_doctor_reports_records_waiting_for_sync(tmp_path, capsys):
    run = log_run(tmp_path, "behind", ["jsonl", "tensorboard"], steps=5)
    cursor = tmp_path / "events" / f"{run.id}.tensorboard.cursor.json"
    cursor.write_text(json.dumps({"seq": 1, "state": json.loads(cursor.read_text())["state"]}))
    assert main(["doctor", "--dir", str(tmp_path), "--json"]) == 1
    checks = {c["area"]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["sync pending"]["status"] == "!!" and "behind (tensorboard:" in checks["sync pending"]["detail"]
    assert checks["backend mlflow"]["status"] == "ok" and checks["tensorboard"]["status"] == "ok"
    assert main(["sync", str(tmp_path)]) == 0
    assert main(["doctor", "--dir", str(tmp_path)]) == 0


def test_doctor_flags_an_unreachable_tracking_server(tmp_path, capsys):
    assert main(["doctor", "--dir", str(tmp_path), "--tracking-uri", "http://127.0.0.1:9", "--timeout", "2"]) == 1
    assert "does not answer" in capsys.readouterr().out


def test_ui_serves_tensorboard_on_localhost(tmp_path, capsys):
    log_run(tmp_path, "shown", ["tensorboard"], steps=3)
    assert main(["ui", "--dir", str(tmp_path), "--no-mlflow", "--check", "--tensorboard-port", "0"]) == 0
    url = capsys.readouterr().out.split()[-1]
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(OSError):  # stopped again after --check
        urllib.request.urlopen(f"{url}/data/runs", timeout=2)


def test_ui_with_nothing_to_show_exits_2(tmp_path, capsys):
    assert main(["ui", "--dir", str(tmp_path)]) == 2
    assert "nothing to show" in capsys.readouterr().err


def test_console_script_lists_the_commands():
    script = Path(sys.executable).with_name("rldk-track")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("compare", "analyze", "doctor", "ui", "sync"):
        assert command in out


def test_sync_to_jsonl_names_the_event_log_and_a_typo_still_fails(tmp_path, capsys):
    run = log_run(tmp_path, "local", ["jsonl"], steps=3)
    assert main(["sync", str(tmp_path), "--to", "jsonl"]) == 0
    assert f"{run.id} -> jsonl: 0 records, done (the event log is the source)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["sync", str(tmp_path), "--to", "jsnol"])
    assert "did you mean 'jsonl'?" in capsys.readouterr().err
