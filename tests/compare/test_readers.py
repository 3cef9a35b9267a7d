"""Readers against stores written by the real clients: the same run reads back the same from all."""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rldk_track
from rldk_track.readers import load_runs
from rldk_track.readers.sources import SourceError



def sources(run) -> dict[str, str]:
    return {
        "jsonl": str(run.dir),
        "mlflow": f"mlflow://{run.project}",
        "wandb": str(run.dir / "wandb"),
        "tensorboard": f"tensorboard://{run.dir / 'tensorboard'}",
        "trackio": f"trackio://{run.project}",
    }


def points(runset) -> pd.DataFrame:
    """The points sorted, with a step logged twice kept in logged order."""
    frame = runset.frame.assign(run=runset.frame["run"].astype(str), metric=runset.frame["metric"].astype(str))
    return frame.sort_values(["metric", "step"], kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def read_back(all_backends_run):
    return {kind: load_runs(source, tracking_uri=all_backends_run.tracking_uri)
            for kind, source in sources(all_backends_run).items()}


def test_event_log_holds_every_point_as_logged(read_back, reference):
    frame = points(read_back["jsonl"])
    expected = sorted((s, m) for s in range(40) for m in reference.values(s)) + [(35, "eval/reward")]
    assert sorted(zip(frame["step"], frame["metric"])) == sorted(expected)
    reward = frame[frame["metric"] == "reward/mean"]
    np.testing.assert_array_equal(reward["value"], [reference.values(s)["reward/mean"] for s in range(40)])
    assert math.isnan(frame[(frame["metric"] == "loss/total") & (frame["step"] == 20)]["value"].iloc[0])


@pytest.mark.parametrize("kind", ["mlflow", "wandb", "tensorboard", "trackio"])
def test_every_tracker_reads_back_the_same_points(read_back, kind):
    expected, got = points(read_back["jsonl"]), points(read_back[kind])
    assert list(zip(got["metric"], got["step"])) == list(zip(expected["metric"], expected["step"]))
    rtol = 1e-6 if kind == "tensorboard" else 0.0  # TensorBoard stores float32
    np.testing.assert_allclose(got["value"], expected["value"], rtol=rtol, equal_nan=True)
    np.testing.assert_allclose(got["wall_time"], expected["wall_time"], atol=0.001)  # MLflow keeps milliseconds


@pytest.mark.parametrize("kind", ["mlflow", "wandb", "tensorboard", "trackio"])
def test_every_tracker_reads_back_the_same_run(read_back, kind, all_backends_run, reference):
    expected, got = read_back["jsonl"].runs.iloc[0], read_back[kind].runs.iloc[0]
    assert got["name"] == "reference" and got["run_id"] == all_backends_run.run_id
    assert got["status"] == expected["status"] == "success"
    assert got["params"] == expected["params"] == {"lr": 3e-6, "model/layers": 2, "model/name": "tiny", "seeds": [1, 2]}
    assert got["tags"] == expected["tags"] == {"team": "rl", "long": reference.long_tag}
    assert got["summary"] == expected["summary"] == {"note": "done", "train_runtime": 812.5}
    assert got["health"] == expected["health"] == "ok"  # the kl_spike alert was cleared
    # W&B starts its own run clock when the backend opens it (its first row is the earliest time it has)
    assert got["start_time"] == pytest.approx(expected["start_time"], abs=0.001 if kind != "wandb" else 30)


@pytest.mark.parametrize("kind", ["mlflow", "wandb", "tensorboard", "trackio"])
def test_every_tracker_reads_back_the_same_alerts(read_back, kind):
    columns = ["step", "rule", "severity", "metric", "value", "threshold", "message", "state"]
    expected = read_back["jsonl"].alerts[columns]
    assert read_back[kind].alerts[columns].equals(expected)
    assert list(expected["state"]) == ["raised", "cleared"] and list(expected["step"]) == [12, 15]


def test_event_log_holds_every_sample_row_as_logged(read_back, reference):
    samples = read_back["jsonl"].samples
    rows = [{k: (None if v is None or v != v else v) for k, v in row.items()}
            for row in samples.drop(columns=["run"]).to_dict("records")]
    assert rows == [{"step": step, "name": "completions", "row": i, **cells}
                    for step in reference.sampled_steps for i, cells in enumerate(reference.samples(step))]


@pytest.mark.parametrize("kind", ["mlflow", "wandb", "tensorboard", "trackio"])
def test_every_tracker_reads_back_the_same_samples(read_back, kind):
    expected, got = read_back["jsonl"].samples, read_back[kind].samples
    assert got.drop(columns=["run"]).astype(object).where(got.notna(), None).equals(
        expected.drop(columns=["run"]).astype(object).where(expected.notna(), None))


def test_mlflow_fetch_modes_read_the_same_histories(all_backends_run):
    from rldk_track.readers.mlflow import read_mlflow

    frames = []
    for fetch in ("bulk", "threads", "client"):
        (run,) = read_mlflow(all_backends_run.project, tracking_uri=all_backends_run.tracking_uri, fetch=fetch)
        frames.append(sorted(zip(run.metrics, run.steps, map(repr, run.values), run.wall_times)))
    assert frames[0] == frames[1] == frames[2]


@pytest.mark.parametrize("ref", ["name", "mlflow_id", "rldk_id"])
def test_one_mlflow_run_is_found_by_name_or_either_id(all_backends_run, ref, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(all_backends_run.tracking_uri)
    experiment = client.get_experiment_by_name(all_backends_run.project)
    mlflow_id = client.search_runs([experiment.experiment_id])[0].info.run_id
    key = {"name": "reference", "mlflow_id": mlflow_id, "rldk_id": all_backends_run.run_id}[ref]
    runs = load_runs(f"mlflow://{all_backends_run.project}/{key}", tracking_uri=all_backends_run.tracking_uri)
    assert runs.run_names == ["reference"]


def test_unknown_mlflow_experiment_lists_the_ones_there(mlflow_server):
    with pytest.raises(LookupError, match="no MLflow experiment 'nope'"):
        load_runs("mlflow://nope", tracking_uri=mlflow_server.uri)


def test_mlflow_sqlite_store_reads_like_the_server(tmp_path, reference):
    logged = reference.log(tmp_path, ["mlflow"], steps=10)
    by_uri = load_runs(f"mlflow://{logged.project}", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    by_file = load_runs(tmp_path / "mlflow.db")
    jsonl = load_runs(tmp_path)
    for runs in (by_uri, by_file):
        assert points(runs)[["metric", "step"]].equals(points(jsonl)[["metric", "step"]])
        np.testing.assert_array_equal(points(runs)["value"], points(jsonl)["value"])  # NaN included
        assert runs.runs.iloc[0]["params"] == jsonl.runs.iloc[0]["params"]


def test_mlflow_source_reads_the_default_store_of_the_default_run_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("RLDK_TRACK_DIR", str(tmp_path / "runs"))
    run = rldk_track.init(backend="mlflow", project="default-store", run_name="here")
    run.log({"x": 1.0}, step=0)
    run.finish()
    assert load_runs("mlflow://default-store").run_names == ["here"]


def test_tensorboard_run_written_by_pytorch_reads_by_its_directory(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(tmp_path / "logs" / "exp1")
    for step in range(5):
        writer.add_scalar("train/loss", 1.0 / (step + 1), step)
        writer.add_scalar("train/acc", step / 10, step, new_style=True)
    writer.add_hparams({"lr": 0.1, "opt": "adam"}, {"hparam/score": 1.0}, run_name=".")
    writer.close()
    runs = load_runs(tmp_path / "logs")
    assert runs.run_names == ["exp1"]
    frame = points(runs)
    assert set(frame["metric"]) >= {"train/loss", "train/acc"}
    acc = frame[frame["metric"] == "train/acc"]
    np.testing.assert_allclose(acc["value"], [0.0, 0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    assert runs.runs.iloc[0]["params"] == {"lr": 0.1, "opt": "adam"}


def test_wandb_run_not_written_by_rldk_reads_at_wandbs_step(tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    run = wandb.init(project="plain", dir=tmp_path, config={"lr": 0.1}, settings=wandb.Settings(console="off"))
    for i in range(4):
        run.log({"loss": 1.0 / (i + 1)})
    run.finish()
    runs = load_runs(tmp_path / "wandb")
    frame = points(runs)
    assert list(frame[frame["metric"] == "loss"]["step"]) == [0, 1, 2, 3]
    assert runs.runs.iloc[0]["params"] == {"lr": 0.1} and runs.runs.iloc[0]["status"] == "success"


def plain_wandb_run_file(tmp_path) -> bytes:
    """The bytes of a finished W&B offline run's file (4 history rows), W&B's own writing."""
    import wandb

    from rldk_track.backends.wandb_offline import wait_until_written

    run = wandb.init(project="plain", dir=tmp_path / "source", mode="offline", settings=wandb.Settings(console="off"))
    for i in range(4):
        run.log({"loss": 1.0 / (i + 1)})
    run.finish()
    assert wait_until_written(run.settings.sync_file)
    return Path(run.settings.sync_file).read_bytes()


def test_wandb_reader_waits_for_a_run_file_the_wandb_service_is_still_writing(tmp_path):
    # wandb.finish() returns before wandb-core writes the run file out: for a moment it holds only
    # its 7-byte header (what made the test above read [] under load).
    import threading

    data = plain_wandb_run_file(tmp_path)
    path = tmp_path / "late" / "wandb" / "offline-run-20260101_000000-late" / "run-late.wandb"
    path.parent.mkdir(parents=True)
    path.write_bytes(data[:7])
    writer = threading.Timer(0.5, path.write_bytes, (data,))
    writer.start()
    runs = load_runs(tmp_path / "late")
    writer.join()
    frame = points(runs)
    assert list(frame[frame["metric"] == "loss"]["step"]) == [0, 1, 2, 3]


def test_wandb_reader_never_returns_an_empty_run_silently(tmp_path, caplog):
    data = plain_wandb_run_file(tmp_path)
    root = tmp_path / "stale" / "wandb"
    for run_id, content in (("good", data), ("empty", data[:7])):
        path = root / f"offline-run-20260101_000000-{run_id}" / f"run-{run_id}.wandb"
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
    empty = root / "offline-run-20260101_000000-empty" / "run-empty.wandb"
    os.utime(empty, (time.time() - 3600, time.time() - 3600))  # written long ago: nothing will come
    with caplog.at_level(logging.WARNING, logger="rldk_track"):
        runs = load_runs(tmp_path / "stale")
    assert len(runs) == 1 and runs.runs.iloc[0]["points"] == 4
    assert f"W&B has written nothing into {empty}" in caplog.text


def test_seed_event_jsonl_reads_by_its_run_id(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [{"step": s, "wall_time": 100.0 + s, "metrics": {"reward": 0.1 * s, "kl": 0.01}, "rng": {"seed": 1},
              "data_slice": {}, "model_info": {"run_id": "seed-run"}, "notes": []} for s in range(3)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"step": 3, "wall', encoding="utf-8")
    runs = load_runs(path)
    assert runs.run_names == ["seed-run"]
    assert len(runs.frame) == 6  # the line cut short is skipped
    assert runs.runs.iloc[0]["status"] == "unfinished"


def test_run_that_never_ended_reads_as_unfinished(tmp_path):
    run = rldk_track.init(dir=tmp_path, run_name="crashed")
    run.log({"x": 1.0}, step=0)
    run.flush()
    assert load_runs(tmp_path).runs.loc["crashed", "status"] == "unfinished"
    run.finish()


def test_same_name_from_two_sources_is_told_apart(tmp_path):
    for sub in ("a", "b"):
        run = rldk_track.init(dir=tmp_path / sub, run_name="twin")
        run.log({"x": 1.0}, step=0)
        run.finish()
    assert load_runs([tmp_path / "a", tmp_path / "b"]).run_names == ["twin [jsonl]", "twin [jsonl] #2"]


@pytest.mark.parametrize("source, message", [
    ("/no/such/dir", "neither an existing path"),
    ("mlflow://", "needs an experiment"),
    ("wandb://only-entity", "ENTITY/PROJECT"),
])
def test_bad_sources_say_what_is_expected(source, message):
    with pytest.raises(SourceError, match=message):
        load_runs(source)


def test_directory_with_nothing_readable_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(SourceError, match="holds no event log"):
        load_runs(tmp_path)


def test_frame_and_runs_unpack_as_a_pair(tmp_path):
    run = rldk_track.init(dir=tmp_path, run_name="pair", config={"a": {"b": 1}})
    run.log({"x": 2.0}, step=3)
    run.finish()
    frame, runs = load_runs(tmp_path)
    assert list(frame.columns) == ["run", "step", "metric", "value", "wall_time"]
    assert str(frame["metric"].dtype) == "category" and frame["step"].dtype == np.int64
    assert runs.loc["pair", "params"] == {"a/b": 1}
    assert Path(runs.loc["pair", "origin"]["event_log"]).exists()


def test_trackio_run_written_by_trackio_itself_reads_with_its_metrics_config_and_alerts(tmp_path):
    import trackio

    project = f"own-{uuid.uuid4().hex[:8]}"
    own = trackio.init(project=project, name="plain", config={"lr": 0.1}, auto_log_cpu=False, auto_log_gpu=False)
    for step in range(3):
        trackio.log({"loss": 1.0 / (step + 1), "step": step}, step=step)
    trackio.alert("loss stalled", text="no progress", level=trackio.AlertLevel.ERROR)
    trackio.finish()
    (run,) = load_runs(f"trackio://{project}/plain").runs.to_dict("records")
    assert (run["name"], run["run_id"], run["params"], run["health"]) == ("plain", own.id, {"lr": 0.1}, "critical")
    frame = load_runs(f"trackio://{project}").frame
    assert sorted(frame[frame["metric"] == "loss"]["value"]) == sorted([1.0, 0.5, 1 / 3])
    assert list(frame[frame["metric"] == "step"]["value"]) == [0.0, 1.0, 2.0]  # trackio's __step, named back


def test_unknown_trackio_project_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trackio project 'nope-none' in"):
        load_runs("trackio://nope-none")
