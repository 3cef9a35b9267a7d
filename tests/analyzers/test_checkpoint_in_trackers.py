"""Checkpoint health in every tracker at once: a ``CheckpointMonitor`` run into a real MLflow
server, W&B (offline), TensorBoard and the event log leaves exactly one ``checkpoint/*`` point per
checkpoint in each, the analyzer's full report never shares a name with a backend's rendering
of the ``CheckpointHealth`` record, and a NaN checkpoint followed by a healthy one leaves every
tracker showing the alert cleared and the run healthy."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from rldk_testsupport.tensorboard import read_tb
from rldk_testsupport.wandb_offline import event_log_records, wandb_stored
from safetensors.torch import save_file

import rldk_track
from rldk_track.producers.checkpoint_monitor import CheckpointMonitor
from rldk_track.readers import load_runs

CHECKPOINT_STEPS = (5, 10)


def save_checkpoint(folder: Path, seed: int, nan: bool = False) -> Path:
    """A small ``checkpoint-N`` folder; a later seed moves the weights a little (``nan``: one NaN)."""
    base = torch.Generator().manual_seed(0)
    noise = torch.Generator().manual_seed(seed)
    state = {name: 0.02 * torch.randn(shape, generator=base) + 0.0001 * seed * torch.randn(shape, generator=noise)
             for name, shape in (("layer.0.weight", (32, 16)), ("layer.1.weight", (16, 32)), ("head.bias", (16,)))}
    if nan:
        state["layer.1.weight"][3, 4] = float("nan")
    folder.mkdir(parents=True)
    save_file(state, str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory, mlflow_server, wandb_home) -> SimpleNamespace:
    """Two checkpoints analysed by the monitor of a run recorded into every tracker."""
    root = tmp_path_factory.mktemp("checkpoint-trackers")
    project = f"ckpt-{uuid.uuid4().hex[:8]}"
    run = rldk_track.init(backend=["mlflow", "wandb", "tensorboard"], project=project, run_name="monitored",
                          dir=root / "runs", mlflow={"tracking_uri": mlflow_server.uri})
    monitor = CheckpointMonitor(run)
    for step in CHECKPOINT_STEPS:
        run.log({"loss": 1.0 / step}, step=step)
        assert monitor.submit(save_checkpoint(root / "output" / f"checkpoint-{step}", seed=step), step=step)
    assert monitor.close(timeout=60)
    report = run.finish(timeout=120)
    assert report.complete, report.describe()
    client = mlflow_server.client()
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name(project).experiment_id])
    return SimpleNamespace(run=run, dir=root / "runs", project=project, uri=mlflow_server.uri, client=client,
                           mlflow_id=mlflow_run.info.run_id, reports=monitor.reports)


def stored_points(monitored: SimpleNamespace, tracker: str, metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of ``metric`` as the tracker itself stores it (its own client or files)."""
    run = monitored.run
    if tracker == "event log":
        return [(r.step, r.values[metric]) for r in event_log_records(monitored.dir, run.id, "metrics") if metric in r.values]
    if tracker == "mlflow":
        return [(m.step, m.value) for m in monitored.client.get_metric_history(monitored.mlflow_id, metric)]
    if tracker == "wandb":
        return wandb_stored(monitored.dir, run.id).series(metric)
    return [(step, value) for step, value, _ in read_tb(monitored.dir / "tensorboard" / run.name).scalars.get(metric, [])]


@pytest.mark.parametrize("tracker", ["event log", "mlflow", "wandb", "tensorboard"])
def test_each_tracker_holds_one_health_score_point_per_checkpoint(monitored, tracker):
    scores = {step: monitored.reports[step].score for step in CHECKPOINT_STEPS}
    points = stored_points(monitored, tracker, "checkpoint/health_score")
    assert [step for step, _ in points] == list(CHECKPOINT_STEPS)
    np.testing.assert_allclose([value for _, value in points], [scores[s] for s in CHECKPOINT_STEPS], rtol=1e-6)
    assert [step for step, _ in stored_points(monitored, tracker, "checkpoint/drift")] == [10]  # step 5 has no reference


def test_tensorboard_has_no_second_health_score_series(monitored):
    tags = read_tb(monitored.dir / "tensorboard" / monitored.run.name).scalars
    checkpoint_tags = sorted(tag for tag in tags if tag.startswith("checkpoint/"))
    assert checkpoint_tags == sorted(f"checkpoint/{name}" for name in (
        "health_score", "nan_count", "inf_count", "weight_norm", "analysis_s", "drift", "cosine"))


@pytest.mark.parametrize("source", ["jsonl", "mlflow", "wandb", "tensorboard"])
def test_every_reader_gets_the_checkpoint_series_of_the_event_log(monitored, source):
    location = {"jsonl": str(monitored.dir), "mlflow": f"mlflow://{monitored.project}",
                "wandb": str(monitored.dir / "wandb"), "tensorboard": f"tensorboard://{monitored.dir / 'tensorboard'}"}
    frame = load_runs(location[source], tracking_uri=monitored.uri).frame
    checkpoint = frame[frame["metric"].astype(str).str.startswith("checkpoint/")]
    expected = load_runs(str(monitored.dir)).frame
    expected = expected[expected["metric"].astype(str).str.startswith("checkpoint/")]
    key = ["metric", "step"]
    got, want = checkpoint.sort_values(key), expected.sort_values(key)
    assert list(zip(got["metric"].astype(str), got["step"])) == list(zip(want["metric"].astype(str), want["step"]))
    np.testing.assert_allclose(got["value"], want["value"], rtol=1e-6 if source == "tensorboard" else 0.0)


def test_mlflow_keeps_the_health_record_and_the_full_report_under_their_own_names(monitored, tmp_path):
    client, run_id = monitored.client, monitored.mlflow_id
    listed = sorted(f.path for f in client.list_artifacts(run_id, "rldk/checkpoints/step_10"))
    assert listed == [f"rldk/checkpoints/step_10/{name}" for name in ("health.json", "health.md", "report.json")]

    def text(name: str) -> str:
        return Path(client.download_artifacts(run_id, f"rldk/checkpoints/step_10/{name}", str(tmp_path))).read_text()

    health, report = json.loads(text("health.json")), json.loads(text("report.json"))
    assert health["kind"] == "checkpoint_health" and health["step"] == 10  # the backend's rendering of the record
    assert len(report["tensors"]) == 3 and report["reference_step"] == 5  # the analyzer's full report
    assert text("health.md").startswith("# Checkpoint health, step 10")
    tags = client.get_run(run_id).data.tags
    assert tags["rldk.checkpoint.health"] == "ok"  # the analyzer's tag, not overwritten by the backend
    assert json.loads(tags["rldk.checkpoint"])["step"] == 10


def test_tensorboard_keeps_the_health_record_and_the_full_report_apart(monitored):
    run_dir = monitored.dir / "tensorboard" / monitored.run.name
    health = json.loads((run_dir / "rldk" / "checkpoints" / "step_10" / "health.json").read_text())
    report = json.loads((run_dir / "artifacts" / "rldk" / "checkpoints" / "step_10" / "report.json").read_text())
    assert health["kind"] == "checkpoint_health" and report["reference_step"] == 5


# -- an alert raised and cleared ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def recovered(tmp_path_factory: pytest.TempPathFactory, mlflow_server, wandb_home) -> SimpleNamespace:
    """A NaN checkpoint at step 5, a healthy one at step 10, recorded into every tracker."""
    root = tmp_path_factory.mktemp("checkpoint-recovered")
    project = f"ckpt-{uuid.uuid4().hex[:8]}"
    run = rldk_track.init(backend=["mlflow", "wandb", "tensorboard"], project=project, run_name="recovered",
                          dir=root / "runs", mlflow={"tracking_uri": mlflow_server.uri})
    monitor = CheckpointMonitor(run)
    for step in CHECKPOINT_STEPS:
        run.log({"loss": 1.0 / step}, step=step)
        assert monitor.submit(save_checkpoint(root / "output" / f"checkpoint-{step}", seed=step, nan=step == 5), step=step)
    assert monitor.close(timeout=60)
    report = run.finish(timeout=120)
    assert report.complete, report.describe()
    client = mlflow_server.client()
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name(project).experiment_id])
    return SimpleNamespace(run=run, dir=root / "runs", project=project, uri=mlflow_server.uri, client=client,
                           mlflow_id=mlflow_run.info.run_id)


def test_mlflow_shows_the_cleared_checkpoint_alert_and_a_healthy_run(recovered):
    tags = recovered.client.get_run(recovered.mlflow_id).data.tags
    assert tags["rldk.alert.checkpoint_nonfinite"] == "cleared"
    assert tags["rldk.health"] == "ok"
    assert tags["rldk.checkpoint.health"] == "ok"
    count = recovered.client.get_metric_history(recovered.mlflow_id, "alerts/count")
    assert [(m.step, m.value) for m in count] == [(5, 1.0)]  # the clear is not counted


def test_wandb_shows_the_cleared_checkpoint_alert_and_a_healthy_run(recovered):
    stored = wandb_stored(recovered.dir, recovered.run.id)
    assert stored.summary["rldk/alert/checkpoint_nonfinite"] == "cleared"
    assert stored.summary["rldk/health"] == "ok"
    assert stored.series("alerts/count") == [(5, 1)]


@pytest.mark.parametrize("source", ["jsonl", "mlflow", "wandb", "tensorboard"])
def test_every_reader_sees_the_episode_raised_then_cleared_and_the_run_healthy(recovered, source):
    location = {"jsonl": str(recovered.dir), "mlflow": f"mlflow://{recovered.project}",
                "wandb": str(recovered.dir / "wandb"), "tensorboard": f"tensorboard://{recovered.dir / 'tensorboard'}"}
    runs = load_runs(location[source], tracking_uri=recovered.uri)
    alerts = runs.alerts
    assert [(a.rule, a.severity, a.state, a.step) for a in alerts.itertuples()] == [
        ("checkpoint_nonfinite", "critical", "raised", 5), ("checkpoint_nonfinite", "critical", "cleared", 10)]
    (row,) = runs.runs.itertuples()
    assert (row.health, row.alerts) == ("ok", 1)
