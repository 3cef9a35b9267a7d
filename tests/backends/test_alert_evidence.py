"""An alert's evidence rows next to the alert in every tracker, as the tracker itself stores them
and as the readers return them: the event log's alert line; MLflow (server and sqlite) an
artifact ``rldk/alerts/<rule>_<step>.json`` beside ``rldk/alerts.jsonl``, named by the tag
``rldk.evidence.<rule>`` and listed as a table; W&B offline a table ``alerts/<rule>/evidence`` in
the alert's history row; TensorBoard a table in the alert's text ``alerts/<rule>``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("wandb")
pytest.importorskip("tensorboard")

import rldk_track  # noqa: E402
from rldk_testsupport.tensorboard import read_tb  # noqa: E402
from rldk_testsupport.wandb_offline import event_log_records, wandb_stored  # noqa: E402
from rldk_track.readers import load_runs  # noqa: E402

#: Per step the same completions: the three longest are the evidence of a truncation alert.
COMPLETIONS = ["one", "one two three four five six", "one two", "one two three four five six seven eight",
               "one two three", "one two three four"]
LONGEST = [COMPLETIONS[3], COMPLETIONS[1], COMPLETIONS[5]]
COLUMNS = ["row", "prompt", "completion", "reward", "length"]


def record_truncating_run(dir: Path, backends: list[str], **options: Any) -> rldk_track.Run:
    """Samples then metrics at steps 1-3 (the samples of a step come first, so its alert at step
    2 always has them); ``truncation`` raises at step 2."""
    run = rldk_track.init(dir=dir, backend=backends, run_name="evidence", analyzers="truncation", **options)
    for step in (1, 2, 3):
        run.log_samples([{"prompt": f"p{i}", "completion": c, "reward": 0.5} for i, c in enumerate(COMPLETIONS)],
                        step=step, name="completions")
        run.log({"length/truncated_ratio": 0.9}, step=step)
    assert run.finish(timeout=120).complete
    return run


def expected_rows() -> list[list[Any]]:
    return [[COMPLETIONS.index(c), f"p{COMPLETIONS.index(c)}", c, 0.5, float(len(c))] for c in LONGEST]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, mlflow_server: Any, wandb_home: Path):
    dir = tmp_path_factory.mktemp("evidence")
    project = f"evidence-{uuid.uuid4().hex[:8]}"
    run = record_truncating_run(dir, ["mlflow", "tensorboard", "wandb"], project=project,
                                mlflow={"tracking_uri": mlflow_server.uri})
    return dir, run, project


def test_the_event_log_alert_line_holds_the_evidence(recorded):
    dir, run, _ = recorded
    (alert,) = [a for a in event_log_records(dir, run.id, "alert") if a.rule == "truncation"]
    evidence = alert.evidence
    assert (alert.step, evidence.name, evidence.step, evidence.by) == (2, "completions", 2, "length")
    assert list(evidence.columns) == COLUMNS and [list(r) for r in evidence.rows] == expected_rows()


def mlflow_evidence(client: Any, run_id: str, tmp: Path) -> tuple[dict[str, str], dict[str, Any]]:
    tags = client.get_run(run_id).data.tags
    path = tags["rldk.evidence.truncation"]
    local = client.download_artifacts(run_id, path, str(tmp / uuid.uuid4().hex))
    return tags, json.loads(Path(local).read_text(encoding="utf-8"))


def test_mlflow_server_keeps_the_evidence_as_a_table_beside_the_alert_log(recorded, mlflow_server, tmp_path):
    _, _, project = recorded
    client = mlflow_server.client()
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name(project).experiment_id])
    tags, table = mlflow_evidence(client, mlflow_run.info.run_id, tmp_path)
    assert tags["rldk.evidence.truncation"] == "rldk/alerts/truncation_2.json"
    assert tags["rldk.alert.truncation"] == "warning"
    assert {"path": "rldk/alerts/truncation_2.json", "type": "table"} in json.loads(tags["mlflow.loggedArtifacts"])
    assert table == {"columns": COLUMNS, "data": expected_rows()}
    assert {f.path for f in client.list_artifacts(mlflow_run.info.run_id, "rldk")} >= {"rldk/alerts", "rldk/alerts.jsonl"}


def test_mlflow_sqlite_keeps_the_same_evidence(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    record_truncating_run(tmp_path, ["mlflow"])
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (mlflow_run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    _, table = mlflow_evidence(client, mlflow_run.info.run_id, tmp_path)
    assert table == {"columns": COLUMNS, "data": expected_rows()}
    (alert,) = load_runs(tmp_path / "mlflow.db").alerts.to_dict("records")
    assert alert["evidence"]["rows"] == expected_rows()


def test_wandb_logs_the_evidence_as_a_table_in_the_alerts_history_row(recorded):
    dir, run, _ = recorded
    stored = wandb_stored(dir, run.id)
    (row,) = [r for r in stored.history if "alerts/truncation/evidence._type" in r]
    assert (row["global_step"], row["alerts/count"], row["alerts/truncation/evidence._type"]) == (2, 1, "table-file")
    folder = stored.files[0].parent
    table = json.loads((folder / "files" / row["alerts/truncation/evidence.path"]).read_text(encoding="utf-8"))
    assert table["columns"] == COLUMNS and table["data"] == expected_rows()


def test_tensorboard_shows_the_evidence_under_the_alerts_text(recorded):
    dir, run, _ = recorded
    tb = read_tb(dir / "tensorboard" / run.name)
    ((step, text, _),) = tb.texts["alerts/truncation"]
    assert step == 2 and "Evidence: rows of samples `completions` at step 2, length first" in text
    table = text.split("Evidence:", 1)[1].splitlines()[2:]
    assert table[0] == "| " + " | ".join(COLUMNS) + " |"
    assert [line.split(" | ")[2] for line in table[2:]] == LONGEST


@pytest.mark.parametrize("kind", ["jsonl", "mlflow", "tensorboard", "wandb"])
def test_every_reader_returns_the_evidence_with_the_alert(recorded, mlflow_server, kind):
    dir, _, project = recorded
    source = {"jsonl": str(dir), "mlflow": f"mlflow://{project}", "tensorboard": f"tensorboard://{dir / 'tensorboard'}",
              "wandb": str(dir / "wandb")}[kind]
    runset = load_runs(source, tracking_uri=mlflow_server.uri)
    (alert,) = runset.alerts.to_dict("records")
    assert (alert["rule"], alert["step"], alert["evidence"]["step"]) == ("truncation", 2, 2)
    assert alert["evidence"]["columns"] == COLUMNS and alert["evidence"]["rows"] == expected_rows()
    assert not any("evidence" in m for m in runset.frame["metric"].unique())


def test_rldk_track_samples_alert_prints_the_evidence_rows(recorded, capsys):
    from rldk_track.cli import main

    dir, _, _ = recorded
    assert main(["samples", str(dir), "--alert", "truncation"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("== evidence  truncation  step 2  warning: Truncation")
    assert "rows of samples 'completions' at step 2, length first" in out
    assert [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("    completion:")] == LONGEST
    assert main(["samples", str(dir), "--alert", "truncation", "--json"]) == 0
    (alert,) = json.loads(capsys.readouterr().out)
    assert [r["completion"] for r in alert["evidence"]["rows"]] == LONGEST and alert["severity"] == "warning"
    assert main(["samples", str(dir), "--alert", "kl_spike"]) == 0
    assert capsys.readouterr().out == "no evidence on alerts of kl_spike\n"


def test_sync_delivers_the_evidence_of_a_run_recorded_without_trackers(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from rldk_track.cli import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    record_truncating_run(tmp_path, ["jsonl"])  # the event log only
    assert main(["sync", str(tmp_path), "--to", "mlflow", "--to", "tensorboard"]) == 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (mlflow_run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    _, table = mlflow_evidence(client, mlflow_run.info.run_id, tmp_path)
    assert table == {"columns": COLUMNS, "data": expected_rows()}
    (run_dir,) = (tmp_path / "tensorboard").iterdir()
    assert "Evidence: rows of samples `completions` at step 2, length first" in read_tb(run_dir).last_text("alerts/truncation")


def test_an_evidence_file_stays_in_its_folder_whatever_the_rule_is_called():
    from rldk_track.vocab.mlflow import evidence_file

    assert evidence_file("truncation", 2) == "rldk/alerts/truncation_2.json"
    assert evidence_file("reward_nonfinite/<lambda>", 5) == "rldk/alerts/reward_nonfinite/_lambda__5.json"
    assert evidence_file("a/../b", 1) == "rldk/alerts/a/_/b_1.json"
