"""The MLflow backend against real MLflow: a `mlflow server` on 127.0.0.1 (started through
backends/mlflow/serve_local.sh) and the embedded sqlite store, read back with MlflowClient."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

import rldk_track  # noqa: E402
from rldk_track.backends import mlflow as backend  # noqa: E402
from rldk_track.eventlog import read_cursor, read_lines  # noqa: E402
from rldk_track.records import CheckpointHealth  # noqa: E402

MAX_FLOAT = 1.7976931348623157e308


# -- helpers -------------------------------------------------------------------------------
def new_project() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def start(dir: Path, uri: str | None, project: str, **kwargs: Any) -> rldk_track.Run:
    options = {**kwargs.pop("mlflow", {}), **({"tracking_uri": uri} if uri else {})}
    return rldk_track.init(backend=["mlflow"], dir=dir, project=project, mlflow=options or None, **kwargs)


def finish(run: rldk_track.Run, status: str = "success") -> None:
    report = run.finish(status, timeout=60)
    assert report.complete, report.describe()


def only_run(client: MlflowClient, project: str) -> Any:
    experiment = client.get_experiment_by_name(project)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return runs[0]


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def artifact_text(client: MlflowClient, run_id: str, path: str, tmp_path: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(tmp_path / uuid.uuid4().hex))).read_text(encoding="utf-8")


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "rldk_track" and text in r.getMessage()]


@dataclass
class Store:
    uri: str | None  # the tracking_uri option; None = the embedded default
    client: MlflowClient
    dir: Path  # the run directory to use


@pytest.fixture(scope="module")
def embedded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run directory (so one sqlite store, created once: ~3 s) for the embedded-store tests."""
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture(params=["server", "sqlite"])
def store(request: pytest.FixtureRequest, mlflow_server: Any, tmp_path: Path, embedded_dir: Path,
          monkeypatch: pytest.MonkeyPatch) -> Store:
    """The shared server, or no tracking URI at all: the embedded sqlite store in the run dir."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if request.param == "server":
        return Store(mlflow_server.uri, mlflow_server.client(), tmp_path)
    return Store(None, MlflowClient(f"sqlite:///{embedded_dir / 'mlflow.db'}"), embedded_dir)


@pytest.fixture
def server(mlflow_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return mlflow_server


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry a tracker that is down every ≤1 s instead of ≤30 s, so outage tests end quickly."""
    monkeypatch.setattr("rldk_track.dispatch.RETRY_INITIAL_S", 0.2)
    monkeypatch.setattr("rldk_track.dispatch.RETRY_MAX_S", 1.0)


# -- MLflow's rules, as pure functions --------------------------------------------------------
def test_limits_match_the_installed_mlflow() -> None:
    from mlflow.utils import validation

    assert backend.MAX_METRICS_PER_BATCH == validation.MAX_METRICS_PER_BATCH
    assert backend.MAX_PARAMS_TAGS_PER_BATCH == validation.MAX_PARAMS_TAGS_PER_BATCH
    assert backend.MAX_ENTITIES_PER_BATCH == validation.MAX_ENTITIES_PER_BATCH
    assert backend.MAX_BATCH_REQUEST_BYTES == validation.MAX_BATCH_LOG_REQUEST_SIZE
    assert backend.MAX_KEY_LENGTH == validation.MAX_ENTITY_KEY_LENGTH
    assert backend.MAX_PARAM_VALUE_LENGTH == validation.MAX_PARAM_VAL_LENGTH
    assert backend.MAX_TAG_VALUE_LENGTH == validation.MAX_TAG_VAL_LENGTH
    assert backend.MAX_EXPERIMENT_NAME_LENGTH == validation.MAX_EXPERIMENT_NAME_LENGTH


@pytest.mark.parametrize("name", ["reward/mean", "kl", "system/gpu0/mem_used_gb", "eval: loss", "Belohnung/Ø-Länge", "報酬/平均"])
def test_valid_names_are_kept_as_given(name: str) -> None:
    assert backend.mlflow_key(name) == name


@pytest.mark.parametrize(
    "name",
    ["loss@step", "a//b", "/lead", "trail/", "./a", "a/./b", "a/../b", "..", ".", "", "..hidden",
     "tab\there", "new\nline", "emoji🚀", "x" * 10_000, "ü/" * 3000, "semi;colon=1"],
)
def test_any_name_becomes_a_key_mlflow_accepts(name: str) -> None:
    from mlflow.utils.validation import _validate_metric_name, _validate_param_name, _validate_tag_name

    key = backend.mlflow_key(name)
    assert len(key) <= backend.MAX_KEY_LENGTH
    _validate_metric_name(key)
    _validate_param_name(key)
    _validate_tag_name(key)


def test_names_that_adapt_to_the_same_key_stay_apart() -> None:
    keys = backend.KeyMap("metric")
    first, second, third = keys.key("loss@x"), keys.key("loss#x"), keys.key("loss_x")
    assert len({first, second, third}) == 3
    assert first == "loss_x"
    assert keys.key("loss#x") == second  # stable
    long_a, long_b = "p" * 300 + "a", "p" * 300 + "b"
    assert keys.key(long_a) != keys.key(long_b)


def test_log_batch_requests_stay_within_every_limit() -> None:
    from mlflow.entities import Metric

    metrics = [Metric(f"m{i}", float(i), 0, i) for i in range(2500)]
    tags = {f"t{i}": "v" * 8000 for i in range(250)}
    requests = list(backend.MlflowBackend._requests(metrics, tags))
    for request_metrics, request_tags in requests:
        assert len(request_metrics) <= 1000 and len(request_tags) <= 100
        assert len(request_metrics) + len(request_tags) <= 1000
        size = sum(len(m.key) + 100 for m in request_metrics) + sum(len(t.key) + len(t.value) + 40 for t in request_tags)
        assert size <= backend.MAX_BATCH_REQUEST_BYTES
    assert [m for r in requests for m in r[0]] == metrics
    assert [t.key for r in requests for t in r[1]] == list(tags)


def test_importing_the_backend_does_not_import_mlflow() -> None:
    code = "import sys, rldk_track, rldk_track.backends.mlflow; sys.exit('mlflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_mistyped_option_fails_fast_instead_of_recording_to_the_local_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'tracking_url' \(did you mean 'tracking_uri'\?\)") as error:
        rldk_track.init(backend="mlflow", dir=tmp_path, project=new_project(),
                        mlflow={"tracking_url": "http://127.0.0.1:5000"})
    assert all(f"\n  {name}: " in str(error.value) for name in backend.MlflowBackend.accepted_options)
    assert not (tmp_path / backend.STORE_FILE).exists() and not (tmp_path / "events").exists()


def test_a_server_that_is_down_at_start_never_holds_up_init_log_or_finish(tmp_path: Path) -> None:
    from rldk_testsupport.mlflow_server import free_port

    t0 = time.perf_counter()
    run = start(tmp_path, f"http://127.0.0.1:{free_port()}", new_project())
    took_init = time.perf_counter() - t0
    log_steps(run, range(50))
    t0 = time.perf_counter()
    report = run.finish(timeout=2)
    took_finish = time.perf_counter() - t0

    assert took_init < 0.5 and took_finish < 4
    assert not report.complete and report.pending["mlflow"] > 0


# -- round trips --------------------------------------------------------------------------
def test_metrics_arrive_with_the_same_values_steps_timestamps_and_counts(store: Store) -> None:
    client = store.client
    project = new_project()
    run = start(store.dir, store.uri, project)
    for step in range(40):
        run.log({"reward/mean": step * 0.25, "kl/mean": 1.0 / (step + 1), "loss/policy": -step}, step=step)
    finish(run)

    mlflow_run = only_run(client, project)
    assert history(client, mlflow_run.info.run_id, "reward/mean") == [(s, s * 0.25) for s in range(40)]
    assert history(client, mlflow_run.info.run_id, "kl/mean") == [(s, 1.0 / (s + 1)) for s in range(40)]
    assert history(client, mlflow_run.info.run_id, "loss/policy") == [(s, float(-s)) for s in range(40)]
    event_log = store.dir / "events" / f"{run.id}.jsonl"
    logged = {obj["step"]: int(obj["wall_time"] * 1000) for _, obj in read_lines(event_log) if obj["kind"] == "metrics"}
    assert {m.step: m.timestamp for m in client.get_metric_history(mlflow_run.info.run_id, "kl/mean")} == logged


def test_the_mlflow_run_is_named_tagged_and_filed_under_the_project(store: Store) -> None:
    client = store.client
    project = new_project()
    run = start(store.dir, store.uri, project, run_name="grpo-lr3e-6", tags={"team": "rl"})
    run.log({"reward": 1.0}, step=0)
    finish(run)

    mlflow_run = only_run(client, project)
    assert mlflow_run.info.run_name == "grpo-lr3e-6"
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.tags["rldk.run_id"] == run.id
    assert mlflow_run.data.tags["rldk.project"] == project
    assert mlflow_run.data.tags["rldk.health"] == "ok"
    assert mlflow_run.data.tags["team"] == "rl"
    assert client.get_experiment(mlflow_run.info.experiment_id).name == project


def test_a_new_experiment_is_a_training_experiment_and_an_existing_one_keeps_its_kind(store: Store) -> None:
    """MLflow 3's ``mlflow.experimentKind``: set on the experiments rldk_track creates, left alone
    on one the user made (here a GenAI one)."""
    client = store.client
    created, existing = new_project(), new_project()
    client.set_experiment_tag(client.create_experiment(existing), "mlflow.experimentKind", "genai_development")
    for project in (created, existing):
        run = start(store.dir, store.uri, project)
        run.log({"reward": 1.0}, step=0)
        finish(run)

    assert client.get_experiment_by_name(created).tags["mlflow.experimentKind"] == "custom_model_development"
    assert client.get_experiment_by_name(existing).tags["mlflow.experimentKind"] == "genai_development"


def test_the_embedded_store_keeps_artifacts_next_to_it(embedded_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = new_project()
    run = start(embedded_dir, None, project)
    run.log_artifact(b"{}", name="report.json")
    finish(run)

    client = MlflowClient(f"sqlite:///{embedded_dir / 'mlflow.db'}")
    mlflow_run = only_run(client, project)
    assert mlflow_run.info.artifact_uri.startswith((embedded_dir / "mlartifacts").as_uri())
    assert [f.path for f in client.list_artifacts(mlflow_run.info.run_id)] == ["report.json"]


def test_two_runs_of_one_project_sit_in_one_experiment(server: Any, tmp_path: Path) -> None:
    project = new_project()
    for name in ("a", "b"):
        run = start(tmp_path / name, server.uri, project, run_name=name)
        run.log({"reward": 1.0}, step=0)
        finish(run)

    client = server.client()
    runs = client.search_runs([client.get_experiment_by_name(project).experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["a", "b"]


@pytest.mark.parametrize(("status", "expected"), [("success", "FINISHED"), ("failed", "FAILED"), ("killed", "KILLED")])
def test_the_run_status_follows_finish(server: Any, tmp_path: Path, status: str, expected: str) -> None:
    project = new_project()
    run = start(tmp_path, server.uri, project)
    run.log({"reward": 1.0}, step=0)
    finish(run, status)

    mlflow_run = only_run(server.client(), project)
    assert mlflow_run.info.status == expected
    assert mlflow_run.info.end_time is not None


def test_nested_config_becomes_flat_params_and_the_full_config_an_artifact(server: Any, tmp_path: Path) -> None:
    project = new_project()
    config = {"lr": 3e-6, "model": {"name": "Qwen/Qwen2-0.5B", "lora": {"r": 16}}, "stop": ["</s>", "\n"], "seed": 1}
    run = start(tmp_path, server.uri, project, config=config)
    finish(run)

    client = server.client()
    mlflow_run = only_run(client, project)
    assert mlflow_run.data.params == {
        "lr": "3e-06", "model/name": "Qwen/Qwen2-0.5B", "model/lora/r": "16", "stop": '["</s>", "\\n"]', "seed": "1",
    }
    assert json.loads(artifact_text(client, mlflow_run.info.run_id, "rldk/config.json", tmp_path)) == config


def test_alerts_become_tags_health_a_count_and_the_alert_log(server: Any, tmp_path: Path) -> None:
    from rldk_track.records import Alert

    project = new_project()
    run = start(tmp_path, server.uri, project)
    for step in range(10):
        run.log({"kl": 0.1 * step}, step=step)
        if step == 5:
            run.alert("kl_spike", "kl above 0.3", severity="warning", step=5, metric="kl", value=0.5, threshold=0.3)
        if step == 7:
            run.alert("reward_hacking", "reward up, quality down", severity="critical", step=7)
    run.emit(Alert(-1, time.time(), 9, "reward_hacking", "critical", "recovered", state="cleared"))
    finish(run)

    client = server.client()
    mlflow_run = only_run(client, project)
    tags = mlflow_run.data.tags
    assert tags["rldk.alert.kl_spike"] == "warning"
    assert tags["rldk.alert.reward_hacking"] == "cleared"
    assert tags["rldk.health"] == "warning"
    assert history(client, mlflow_run.info.run_id, "alerts/count") == [(5, 1.0), (7, 2.0)]
    lines = artifact_text(client, mlflow_run.info.run_id, "rldk/alerts.jsonl", tmp_path).splitlines()
    assert [(a["rule"], a["state"], a["step"]) for a in map(json.loads, lines)] == [
        ("kl_spike", "raised", 5), ("reward_hacking", "raised", 7), ("reward_hacking", "cleared", 9),
    ]


def test_health_is_critical_while_a_critical_alert_is_raised(server: Any, tmp_path: Path) -> None:
    project = new_project()
    run = start(tmp_path, server.uri, project)
    run.alert("kl_spike", "kl above 0.3", severity="warning", step=1)
    run.alert("nan_loss", "loss is NaN", severity="critical", step=2)
    finish(run)

    tags = only_run(server.client(), project).data.tags
    assert (tags["rldk.alert.nan_loss"], tags["rldk.health"]) == ("critical", "critical")


def test_checkpoint_health_becomes_a_tag_and_a_report_but_no_metric(server: Any, tmp_path: Path) -> None:
    project = new_project()
    run = start(tmp_path, server.uri, project)
    for step, score in ((100, 0.93), (200, 0.41)):
        run.emit(CheckpointHealth(-1, time.time(), step, f"/ckpt/step_{step}", score, ("nan in lm_head",) if score < 0.5 else (),
                                  {"drift": score / 10}))
    finish(run)

    client = server.client()
    mlflow_run = only_run(client, project)
    run_id = mlflow_run.info.run_id
    assert mlflow_run.data.metrics == {}  # the checkpoint/* series are the analyzer's Metrics record
    assert json.loads(mlflow_run.data.tags["rldk.checkpoint"]) == {"step": 200, "score": 0.41, "issues": ["nan in lm_head"]}
    assert "rldk.checkpoint.health" not in mlflow_run.data.tags  # the analyzer's ok|warning|critical tag
    report = json.loads(artifact_text(client, run_id, "rldk/checkpoints/step_200/health.json", tmp_path))
    assert (report["score"], report["issues"], report["path"]) == (0.41, ["nan in lm_head"], "/ckpt/step_200")


def test_artifact_files_and_directories_arrive_under_their_name(server: Any, tmp_path: Path) -> None:
    project = new_project()
    folder = tmp_path / "samples"
    (folder / "deep").mkdir(parents=True)
    (folder / "a.txt").write_text("A")
    (folder / "deep" / "b.txt").write_text("B")
    run = start(tmp_path / "run", server.uri, project)
    run.log_artifact(b"step,reward\n0,1.0\n", name="reports/rewards.csv")
    run.log_artifact(folder, name="generations/step_10")
    finish(run)

    client = server.client()
    run_id = only_run(client, project).info.run_id
    assert artifact_text(client, run_id, "reports/rewards.csv", tmp_path) == "step,reward\n0,1.0\n"
    assert artifact_text(client, run_id, "generations/step_10/a.txt", tmp_path) == "A"
    assert artifact_text(client, run_id, "generations/step_10/deep/b.txt", tmp_path) == "B"


def test_summary_numbers_become_metrics_at_the_last_step_and_the_rest_tags(server: Any, tmp_path: Path) -> None:
    project = new_project()
    run = start(tmp_path, server.uri, project)
    for step in range(5):
        run.log({"reward": float(step)}, step=step)
    run.log_summary({"train_runtime": 812.5, "best_checkpoint": "ckpt-3", "eval": {"win_rate": 0.61}})
    finish(run)

    client = server.client()
    mlflow_run = only_run(client, project)
    assert history(client, mlflow_run.info.run_id, "train_runtime") == [(4, 812.5)]
    assert history(client, mlflow_run.info.run_id, "eval/win_rate") == [(4, 0.61)]
    assert mlflow_run.data.tags["summary.best_checkpoint"] == "ckpt-3"


def test_the_summary_reads_back_as_summary_and_its_points_stay_out_of_the_series(server: Any, tmp_path: Path) -> None:
    from rldk_track.readers import load_runs

    project = new_project()
    run = start(tmp_path, server.uri, project)
    for step in range(5):
        run.log({"reward": float(step)}, step=step)
    run.log_summary({"train_runtime": 812.5, "reward": 9.5, "best": "ckpt-3", "eval": {"win_rate": 0.61}})
    run.log_summary({"train_runtime": 813.0, "inf": math.inf})
    finish(run)

    from_mlflow = load_runs(f"mlflow://{project}", tracking_uri=server.uri)
    from_event_log = load_runs(tmp_path)
    assert from_mlflow.runs.iloc[0]["summary"] == from_event_log.runs.iloc[0]["summary"] == {
        "train_runtime": 813.0, "reward": 9.5, "best": "ckpt-3", "eval": {"win_rate": 0.61}, "inf": math.inf}
    points = from_mlflow.frame.sort_values("step")
    assert list(zip(points["metric"], points["step"], points["value"])) == [("reward", s, float(s)) for s in range(5)]
    # what MLflow itself shows: the summary numbers are metrics, the reward's last value is the summary's
    client = server.client()
    mlflow_run = only_run(client, project)
    assert mlflow_run.data.metrics["train_runtime"] == 813.0 and mlflow_run.data.metrics["reward"] == 9.5


def test_a_resumed_run_keeps_the_summary_of_its_first_part(server: Any, tmp_path: Path) -> None:
    from rldk_track.readers import load_runs

    project = new_project()
    first = start(tmp_path, server.uri, project)
    first.log({"reward": 1.0}, step=0)
    first.log_summary({"first": 1.0})
    finish(first)
    resumed = start(tmp_path, server.uri, project, run_id=first.id)
    resumed.log({"reward": 2.0}, step=1)
    resumed.log_summary({"second": 2.0})
    finish(resumed)

    read = load_runs(f"mlflow://{project}", tracking_uri=server.uri)
    assert read.runs.iloc[0]["summary"] == {"first": 1.0, "second": 2.0}
    assert sorted(zip(read.frame["metric"].astype(str), read.frame["step"], read.frame["value"])) == [
        ("reward", 0, 1.0), ("reward", 1, 2.0)]


def test_a_param_logged_again_with_another_value_keeps_the_first_and_reports_once(
    server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = new_project()
    run = start(tmp_path, server.uri, project, config={"lr": 1e-5, "seed": 1})
    run.log({"reward": 0.0}, step=0)
    run.log_params({"lr": 2e-5, "seed": 1})
    run.log_params({"lr": 3e-5})
    run.log({"reward": 1.0}, step=1)
    finish(run)

    client = server.client()
    mlflow_run = only_run(client, project)
    assert mlflow_run.data.params == {"lr": "1e-05", "seed": "1"}
    assert mlflow_run.data.tags["rldk.param_changed.lr"] == "3e-05"
    assert history(client, mlflow_run.info.run_id, "reward") == [(0, 0.0), (1, 1.0)]
    assert len(warnings_about(caplog, "params cannot change")) == 1
    assert json.loads(artifact_text(client, mlflow_run.info.run_id, "rldk/config.json", tmp_path)) == {"lr": 3e-5, "seed": 1}


def test_the_users_own_mlflow_settings_are_untouched(server: Any, tmp_path: Path) -> None:
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT

    def settings() -> tuple[Any, ...]:
        return (mlflow.get_tracking_uri(), mlflow.active_run(), MLFLOW_HTTP_REQUEST_TIMEOUT.get(),
                MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT"))

    before = settings()
    run = start(tmp_path, server.uri, new_project(), mlflow={"http_timeout": 3, "http_max_retries": 0})
    run.log({"reward": 1.0}, step=0)
    finish(run)

    assert settings() == before


def test_a_password_in_the_tracking_uri_stays_out_of_the_cursor_file(server: Any, tmp_path: Path) -> None:
    project = new_project()
    uri = server.uri.replace("http://", "http://alice:hunter2@")
    run = start(tmp_path, uri, project)
    run.log({"reward": 1.0}, step=0)
    finish(run)
    resumed = start(tmp_path, uri, project, run_id=run.id)
    resumed.log({"reward": 2.0}, step=1)
    finish(resumed)

    cursor = (tmp_path / "events" / f"{run.id}.mlflow.cursor.json").read_text()
    assert "hunter2" not in cursor and "alice:***@" in cursor
    client = server.client()
    assert history(client, only_run(client, project).info.run_id, "reward") == [(0, 1.0), (1, 2.0)]


# -- bad input ----------------------------------------------------------------------------
def test_nan_and_infinities_are_stored_the_way_mlflow_stores_them(server: Any, tmp_path: Path) -> None:
    project = new_project()
    run = start(tmp_path, server.uri, project)
    run.log({"nan": float("nan"), "pos_inf": float("inf"), "neg_inf": float("-inf")}, step=3)
    finish(run)

    client = server.client()
    run_id = only_run(client, project).info.run_id
    assert [(m.step, math.isnan(m.value)) for m in client.get_metric_history(run_id, "nan")] == [(3, True)]
    assert history(client, run_id, "pos_inf") == [(3, MAX_FLOAT)]  # SQL has no Inf: MLflow stores ±max float
    assert history(client, run_id, "neg_inf") == [(3, -MAX_FLOAT)]


def test_invalid_long_and_colliding_names_are_adapted_kept_apart_and_reported_once(
    server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = new_project()
    names = ["r" * 10_000, "r" * 10_000 + "x", "loss@policy", "loss#policy", "loss_policy", "a//b", "../up", "報酬/平均"]
    run = start(tmp_path, server.uri, project)
    for step in range(5):
        run.log({name: float(i * 10 + step) for i, name in enumerate(names)}, step=step)
    finish(run)

    client = server.client()
    mlflow_run = only_run(client, project)
    run_id = mlflow_run.info.run_id
    keys = json.loads(artifact_text(client, run_id, "rldk/mlflow_keys.json", tmp_path))["metric"]
    key_of = {**{name: name for name in names}, **dict(keys)}
    assert len({key_of[name] for name in names}) == len(names)
    for i, name in enumerate(names):
        assert history(client, run_id, key_of[name]) == [(s, float(i * 10 + s)) for s in range(5)]
    assert key_of["報酬/平均"] == "報酬/平均"
    assert len(mlflow_run.data.metrics) == len(names)
    for name in ("loss@policy", "../up"):
        assert len(warnings_about(caplog, f"{name!r} is not a valid MLflow metric name")) == 1
    assert len(warnings_about(caplog, "and 'loss#policy' would both become 'loss_policy'")) == 1


def test_a_huge_config_value_is_truncated_with_a_note_and_kept_whole_in_the_config_artifact(
    server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = new_project()
    prompt = "You are a helpful assistant. " * 36_000  # ~1 MB
    run = start(tmp_path, server.uri, project, config={"system_prompt": prompt, "lr": 1e-6})
    finish(run)

    client = server.client()
    mlflow_run = only_run(client, project)
    value = mlflow_run.data.params["system_prompt"]
    assert len(value) == backend.MAX_PARAM_VALUE_LENGTH
    assert value.startswith(prompt[:1000]) and value.endswith("full value in rldk/config.json]")
    assert mlflow_run.data.tags["rldk.params_truncated"] == "system_prompt"
    assert json.loads(artifact_text(client, mlflow_run.info.run_id, "rldk/config.json", tmp_path))["system_prompt"] == prompt
    assert len(warnings_about(caplog, "truncated to 6000")) == 1


def test_unicode_tags_and_long_tag_values_arrive(server: Any, tmp_path: Path) -> None:
    project = new_project()
    run = start(tmp_path, server.uri, project, tags={"Datensatz": "Ünïcödé ✓", "notes": "n" * 20_000})
    finish(run)

    tags = only_run(server.client(), project).data.tags
    assert tags["Datensatz"] == "Ünïcödé ✓"
    assert len(tags["notes"]) == backend.MAX_TAG_VALUE_LENGTH and tags["notes"].startswith("n" * 7000)


def test_steps_out_of_order_are_stored_as_given(server: Any, tmp_path: Path) -> None:
    project = new_project()
    run = start(tmp_path, server.uri, project)
    for step in (0, 1, 2, 10, 5, 3, 11):
        run.log({"reward": float(step)}, step=step)
    finish(run)

    client = server.client()
    run_id = only_run(client, project).info.run_id
    assert history(client, run_id, "reward") == sorted((s, float(s)) for s in (0, 1, 2, 10, 5, 3, 11))


def test_a_record_with_more_than_1000_metrics_and_more_than_100_params_arrives_whole(server: Any, tmp_path: Path) -> None:
    project = new_project()
    run = start(tmp_path, server.uri, project, config={f"layer_{i}": {"lr_scale": i} for i in range(350)})
    run.log({f"grad/norm/layer_{i}": float(i) for i in range(2500)}, step=7)
    finish(run)

    client = server.client()
    mlflow_run = only_run(client, project)
    assert mlflow_run.data.metrics == {f"grad/norm/layer_{i}": float(i) for i in range(2500)}
    assert mlflow_run.data.params == {f"layer_{i}/lr_scale": str(i) for i in range(350)}


def test_a_record_mlflow_refuses_is_kept_aside_and_the_rest_arrives(server: Any, tmp_path: Path) -> None:
    from rldk_track.records import Metrics

    project = new_project()
    run = start(tmp_path, server.uri, project)
    for step in range(10):
        run.log({"reward": float(step)}, step=step)
        if step == 4:  # MLflow refuses a negative timestamp
            run.emit(Metrics(-1, -1.0, 4, {"before_1970": 1.0}))
    finish(run)

    client = server.client()
    assert history(client, only_run(client, project).info.run_id, "reward") == [(s, float(s)) for s in range(10)]
    rejected = (tmp_path / "events" / f"{run.id}.mlflow.rejected.jsonl").read_text().splitlines()
    assert [json.loads(line)["record"]["metrics"] for line in rejected] == [{"before_1970": 1.0}]
    assert "INVALID_PARAMETER_VALUE" in json.loads(rejected[0])["error"]


# -- outages ------------------------------------------------------------------------------
def log_steps(run: rldk_track.Run, steps: range) -> list[float]:
    """Log one record per step and return how long each ``run.log`` took."""
    took = []
    for step in steps:
        t0 = time.perf_counter()
        run.log({"reward": step * 0.5, "kl": step / 1000}, step=step)
        took.append(time.perf_counter() - t0)
    return took


def assert_fast(took: list[float]) -> None:
    """``run.log`` did not wait on the tracker (bounds loose enough for a loaded 2-core machine;
    waiting on MLflow would take seconds)."""
    took = sorted(took)
    assert took[len(took) // 2] < 0.001 and took[int(len(took) * 0.95)] < 0.01, took[-10:]


def assert_every_point_once(client: MlflowClient, project: str, steps: int) -> None:
    run_id = only_run(client, project).info.run_id
    assert history(client, run_id, "reward") == [(s, s * 0.5) for s in range(steps)]
    assert history(client, run_id, "kl") == [(s, s / 1000) for s in range(steps)]


def test_a_stopped_server_loses_nothing_and_logging_stays_fast(
    mlflow_server_factory: Any, tmp_path: Path, fast_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    server = mlflow_server_factory()
    project = new_project()
    run = start(tmp_path, server.uri, project)
    log_steps(run, range(20))
    assert run.flush(timeout=30)

    server.stop()
    took = log_steps(run, range(20, 320))
    assert not run.flush(timeout=2), "the server is down: nothing after step 19 can be delivered"
    assert warnings_about(caplog, "could not deliver to mlflow")
    server.start()
    finish(run)

    assert_fast(took)
    assert_every_point_once(server.client(), project, 320)
    assert only_run(server.client(), project).info.status == "FINISHED"


def test_a_hung_server_is_given_up_on_quickly_and_loses_nothing(
    mlflow_server_factory: Any, tmp_path: Path, fast_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    server = mlflow_server_factory()
    project = new_project()
    run = start(tmp_path, server.uri, project, mlflow={"http_timeout": 2, "http_max_retries": 1})
    log_steps(run, range(20))
    assert run.flush(timeout=30)

    server.pause()
    hung_at = time.monotonic()
    took = log_steps(run, range(20, 320))
    while not warnings_about(caplog, "could not deliver to mlflow") and time.monotonic() - hung_at < 30:
        time.sleep(0.1)
    gave_up_after = time.monotonic() - hung_at
    server.resume()
    finish(run)

    # 2 s timeout x (1 + 1 retry) + backoff, not MLflow's 120 s x 7 retries
    assert gave_up_after < 10
    assert_fast(took)
    # requests that timed out were still answered after SIGCONT: re-sent points are not doubled
    assert_every_point_once(server.client(), project, 320)


# -- crash and sync -----------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import sys, time
    import rldk_track

    run = rldk_track.init(backend=["mlflow"], dir=sys.argv[1], project=sys.argv[2], run_name="crashes",
                          mlflow={"tracking_uri": sys.argv[3]})
    for step in range(100):
        run.log({"reward": step * 0.5, "kl": step / 1000}, step=step)
    assert run.flush(timeout=60)
    for step in range(100, 1500):
        run.log({"reward": step * 0.5, "kl": step / 1000}, step=step)
    print("logged", flush=True)
    time.sleep(120)
    """
)


def last_step(event_log: Path) -> int:
    return max((obj["step"] for _, obj in read_lines(event_log) if obj.get("kind") == "metrics"), default=-1)


def rldk_track_sync(dir: Path) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).with_name("rldk-track")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "rldk_track.cli"]
    return subprocess.run([*command, "sync", str(dir)], capture_output=True, text=True, timeout=120)


def test_sync_completes_a_killed_run_and_a_second_sync_adds_nothing(server: Any, tmp_path: Path) -> None:
    project = new_project()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    run_dir = tmp_path / "runs"
    child = subprocess.Popen([sys.executable, str(script), str(run_dir), project, server.uri],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "logged"
        (event_log,) = (run_dir / "events").glob("*.jsonl")
        deadline = time.monotonic() + 30
        while last_step(event_log) < 1499 and time.monotonic() < deadline:  # on disk, not yet in MLflow
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    logged = [obj for _, obj in read_lines(event_log) if obj.get("kind") == "metrics"]
    assert logged[-1]["step"] == 1499
    cursor = read_cursor(event_log.with_name(event_log.stem + ".mlflow.cursor.json"))
    assert cursor["seq"] < logged[-1]["seq"], "the child was killed before MLflow had everything"

    first = rldk_track_sync(run_dir)
    assert first.returncode == 0, first.stdout + first.stderr
    client = server.client()
    mlflow_run = only_run(client, project)
    run_id = mlflow_run.info.run_id
    assert mlflow_run.info.run_id == cursor["state"]["mlflow_run_id"]
    assert mlflow_run.info.status == "KILLED"
    assert history(client, run_id, "reward") == [(obj["step"], obj["metrics"]["reward"]) for obj in logged]
    assert history(client, run_id, "kl") == [(obj["step"], obj["metrics"]["kl"]) for obj in logged]

    second = rldk_track_sync(run_dir)
    assert second.returncode == 0 and "already up to date" in second.stdout
    assert len(client.get_metric_history(run_id, "reward")) == len(logged)
    assert len(client.get_metric_history(run_id, "kl")) == len(logged)


def test_a_batch_written_again_after_a_failure_is_stored_once(server: Any, tmp_path: Path) -> None:
    from rldk_track.backends.base import Resume, RunInfo
    from rldk_track.records import Alert, Metrics, Params, RunEnd

    project = new_project()
    now = time.time()
    records = [
        Params(0, now, {"lr": 1e-5, "note": "x" * 7000}),
        *(Metrics(1 + s, now + s, s, {"reward": s * 0.5, "bad@name": 1.0}) for s in range(30)),
        Alert(31, now + 30, 29, "kl_spike", "warning", "kl above 0.3"),
        RunEnd(32, now + 31, "success"),
    ]
    mlflow_backend = backend.MlflowBackend(RunInfo(uuid.uuid4().hex[:12], "twice", project, tmp_path, now),
                                           {"tracking_uri": server.uri})
    mlflow_backend.open(None, Resume())
    mlflow_backend.write(records)
    mlflow_backend.write(records)  # as the dispatcher does when a reply was lost
    mlflow_backend.close()

    client = server.client()
    run_id = only_run(client, project).info.run_id
    assert history(client, run_id, "reward") == [(s, s * 0.5) for s in range(30)]
    assert len(client.get_metric_history(run_id, "bad_name")) == 30
    assert history(client, run_id, "alerts/count") == [(29, 1.0)]
    assert len(artifact_text(client, run_id, "rldk/alerts.jsonl", tmp_path).splitlines()) == 1


def test_a_resumed_run_continues_the_same_mlflow_run_with_the_same_keys(server: Any, tmp_path: Path) -> None:
    project = new_project()
    first = start(tmp_path, server.uri, project, config={"lr": 1e-5})
    first.log({"loss@policy": 1.0, "loss_policy": 2.0}, step=0)
    finish(first)
    resumed = start(tmp_path, server.uri, project, run_id=first.id, config={"lr": 1e-5})
    resumed.log({"loss_policy": 3.0, "loss@policy": 4.0}, step=1)
    finish(resumed)

    client = server.client()
    mlflow_run = only_run(client, project)
    run_id = mlflow_run.info.run_id
    key_of = {"loss_policy": "loss_policy", **dict(json.loads(artifact_text(client, run_id, "rldk/mlflow_keys.json", tmp_path))["metric"])}
    assert history(client, run_id, key_of["loss@policy"]) == [(0, 1.0), (1, 4.0)]
    assert history(client, run_id, key_of["loss_policy"]) == [(0, 2.0), (1, 3.0)]
    assert len(mlflow_run.data.metrics) == 2
    assert mlflow_run.info.status == "FINISHED"
