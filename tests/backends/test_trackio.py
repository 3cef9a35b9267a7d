"""The trackio backend against the real trackio package in local mode: its store is the temporary
``TRACKIO_DIR`` that tests/conftest.py sets, and every run is read back through trackio's own
storage calls and ``trackio.Api`` (what its dashboard reads). Each test uses its own project."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

import rldk_track
from rldk_track.backends.base import Resume, RunInfo
from rldk_track.backends.trackio import RESERVED_PROJECT_SUFFIXES, TrackioBackend, check_project
from rldk_track.cli import main as cli
from rldk_track.records import Alert, Metrics, RunEnd, from_json

trackio = pytest.importorskip("trackio")
from trackio.sqlite_storage import SQLiteStorage  # noqa: E402


def project() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def start(tmp_path: Path, **kwargs) -> rldk_track.Run:
    kwargs.setdefault("project", project())
    return rldk_track.init(backend="trackio", dir=tmp_path, run_name=kwargs.pop("run_name", "grpo"), **kwargs)


def logs(run: rldk_track.Run, **kwargs) -> list[dict]:
    return SQLiteStorage.get_logs(kwargs.get("project", run.project), run_id=run.id)


def config(run: rldk_track.Run) -> dict:
    return SQLiteStorage.get_run_config(run.project, run_id=run.id)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def logged_metrics(run_dir: Path) -> list[Metrics]:
    (log,) = (run_dir / "events").glob("*.jsonl")
    records = [from_json(json.loads(line)) for line in log.read_text().splitlines()]  # the event log's lines
    return [r for r in records if isinstance(r, Metrics)]


# -- metrics -----------------------------------------------------------------------------------
def test_each_metrics_record_is_one_row_at_its_step_with_its_wall_time(tmp_path):
    run = start(tmp_path)
    for step in range(20):
        run.log({"reward/mean": 0.1 * step, "kl/mean": 1e-3 * step**2}, step=10 * step)
    assert run.finish().complete
    rows = logs(run)
    logged = logged_metrics(tmp_path)
    assert [(r["step"], r["reward/mean"], r["kl/mean"]) for r in rows] == [
        (m.step, m.values["reward/mean"], m.values["kl/mean"]) for m in logged]
    assert [epoch(r["timestamp"]) for r in rows] == pytest.approx([m.wall_time for m in logged], abs=1e-6)


def test_nan_and_infinities_come_back_as_floats(tmp_path):
    run = start(tmp_path)
    for step, value in enumerate([1.0, math.nan, math.inf, -math.inf]):
        run.log({"loss/policy": value}, step=step)
    run.finish()
    values = [r["loss/policy"] for r in logs(run)]
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2:] == [math.inf, -math.inf]


def test_steps_that_go_back_are_kept_as_logged(tmp_path):
    run = start(tmp_path)
    for step in (0, 1, 2, 1, 5):
        run.log({"x": float(step)}, step=step)
    run.finish()
    assert [r["step"] for r in logs(run)] == [0, 1, 2, 1, 5]


def test_keys_trackio_reserves_are_renamed_its_way_and_reported_once(tmp_path, caplog):
    run = start(tmp_path)
    for step in range(3):
        run.log({"step": float(step), "__x": 1.0, "time": 2.0}, step=step)
    run.finish()
    row = logs(run)[0]
    assert (row["step"], row["__step"], row["____x"], row["__time"]) == (0, 0.0, 1.0, 2.0)
    renamed = [r.getMessage() for r in caplog.records if "trackio reserves" in r.getMessage()]
    assert len(renamed) == 3


# -- the run -------------------------------------------------------------------------------------
def test_the_trackio_run_has_the_run_id_name_and_project(tmp_path):
    run = start(tmp_path, run_name="lr-3e-6", trackio={"group": "sweep-1"})
    run.log({"x": 1.0}, step=0)
    run.finish()
    (found,) = trackio.Api().runs(run.project)
    assert (found.id, found.name) == (run.id, "lr-3e-6")
    assert found.config["_Group"] == "sweep-1"
    assert found.config["rldk/run_id"] == run.id


def test_the_project_option_files_the_run_elsewhere(tmp_path):
    other = project()
    run = start(tmp_path, trackio={"project": other})
    run.log({"x": 1.0}, step=0)
    run.finish()
    assert [r.id for r in trackio.Api().runs(other)] == [run.id]


def test_config_merges_when_logged_again_and_tags_and_summary_are_config_keys(tmp_path):
    run = start(tmp_path, config={"lr": 3e-6, "model": {"layers": 2}}, tags={"team": "rl"})
    run.log_params({"model": {"name": "tiny"}})
    run.log({"x": 1.0}, step=0)
    run.log_summary({"train_runtime": 812.5, "note": "done"})
    run.finish()
    stored = config(run)
    assert (stored["lr"], stored["model"]) == (3e-6, {"layers": 2, "name": "tiny"})
    assert (stored["rldk/tag/team"], stored["rldk/summary/train_runtime"], stored["rldk/summary/note"]) == (
        "rl", 812.5, "done")


@pytest.mark.parametrize("status", ["success", "failed", "killed"])
def test_the_status_at_finish_is_in_the_config(tmp_path, status):
    run = start(tmp_path)
    run.log({"x": 1.0}, step=0)
    assert run.flush(timeout=60).complete
    assert config(run)["rldk/status"] == "running"
    run.finish(status=status)
    assert config(run)["rldk/status"] == status


def test_alerts_are_trackio_alerts_with_its_levels_and_the_health_follows_them(tmp_path):
    run = start(tmp_path)
    run.log({"kl/mean": 0.01}, step=0)
    run.alert("kl_spike", "KL jumped", severity="warning", step=12, metric="kl/mean", value=0.9, threshold=0.1)
    run.alert("nan_loss", "loss is NaN", severity="critical", step=14, metric="loss", value=math.nan)
    run.emit(Alert(-1, time.time(), 15, "kl_spike", "warning", "KL back", "kl/mean", 0.03, 0.1, None, "cleared"))
    run.finish()
    alerts = sorted(SQLiteStorage.get_alerts(run.project, run_id=run.id), key=lambda a: a["step"])
    assert [(a["title"], a["level"], a["step"]) for a in alerts] == [
        ("kl_spike: warning", "warn", 12), ("nan_loss: critical", "error", 14), ("kl_spike: cleared", "warn", 15)]
    assert alerts[0]["text"].startswith("KL jumped\nkl/mean = 0.9 · threshold 0.1")
    stored = config(run)
    assert (stored["rldk/alert/kl_spike"], stored["rldk/alert/nan_loss"], stored["rldk/health"]) == (
        "cleared", "critical", "critical")
    counts = [(r["step"], r["alerts/count"]) for r in logs(run) if "alerts/count" in r]
    assert counts == [(12, 1), (14, 2)]


# -- options and names ---------------------------------------------------------------------------
def test_an_unknown_option_fails_fast_with_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown trackio option 'projet' \(did you mean 'project'\?\)"):
        start(tmp_path, trackio={"projet": "x"})
    assert not (tmp_path / "events").exists()


def test_an_option_of_the_wrong_type_fails_fast(tmp_path):
    with pytest.raises(TypeError, match="trackio option 'group' must be str"):
        start(tmp_path, trackio={"group": 3})


@pytest.mark.parametrize("name", ["rlhf", "my.model", "registry-x", "Registry-x", "exp_system", "exp_configs",
                                  "_system", "a_run_artifact_links", "über", "", "exp_traces2"])
def test_project_names_are_refused_exactly_when_trackio_refuses_them(name):
    def refused(check) -> bool:
        try:
            check(name)
        except ValueError:
            return True
        return False

    assert refused(check_project) == refused(SQLiteStorage.validate_project_name)


def test_the_reserved_suffixes_are_trackios(tmp_path):
    tables = ("system", "configs", "traces", *SQLiteStorage._ARTIFACT_PARQUET_TABLES)
    assert RESERVED_PROJECT_SUFFIXES == tuple(f"_{t}" for t in tables)


def test_a_project_trackio_refuses_fails_at_init(tmp_path):
    with pytest.raises(ValueError, match="registries"):
        start(tmp_path, project="registry-models")


def test_importing_the_backend_does_not_import_trackio():
    code = "import sys, rldk_track.backends.trackio; print('trackio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**os.environ})
    assert out.stdout.strip() == "False", out.stderr


def test_the_users_own_trackio_run_is_left_alone(tmp_path):
    own = trackio.init(project=project(), name="mine", auto_log_cpu=False, auto_log_gpu=False)
    run = start(tmp_path)
    run.log({"x": 1.0}, step=0)
    run.finish()
    from trackio import context_vars

    assert context_vars.current_run.get() is own
    trackio.log({"y": 2.0})
    trackio.finish()
    assert [r["y"] for r in SQLiteStorage.get_logs(own.project, run_id=own.id)] == [2.0]


# -- delivery guarantees -------------------------------------------------------------------------
def test_a_batch_is_stored_when_write_returns_and_a_resent_batch_adds_nothing(tmp_path):
    name = project()
    backend = TrackioBackend(RunInfo("r1", "retry", name, tmp_path, 1000.0))
    backend.open(None, Resume())
    batch = [Metrics(seq, 1000.0 + seq, seq, {"x": float(seq)}) for seq in range(5)]
    backend.write(batch)
    assert [r["x"] for r in SQLiteStorage.get_logs(name, run_id="r1")] == [0.0, 1.0, 2.0, 3.0, 4.0]
    backend.write(batch)
    backend.write([*batch, RunEnd(5, 1010.0, "success")])
    backend.close()
    assert [r["x"] for r in SQLiteStorage.get_logs(name, run_id="r1")] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_resumed_run_continues_the_same_trackio_run_with_its_config_and_alert_states(tmp_path):
    first = start(tmp_path, config={"lr": 1e-5})
    first.log({"x": 0.0}, step=0)
    first.alert("kl_spike", "high", severity="critical", step=0)
    first.finish(status="killed")
    second = rldk_track.init(backend="trackio", dir=tmp_path, project=first.project, run_name="grpo", run_id=first.id)
    second.log({"x": 1.0}, step=1)
    second.finish()
    (found,) = trackio.Api().runs(first.project)
    assert found.id == first.id
    assert [(r["step"], r["x"]) for r in logs(first) if "x" in r] == [(0, 0.0), (1, 1.0)]
    stored = config(first)
    assert (stored["lr"], stored["rldk/alert/kl_spike"], stored["rldk/health"], stored["rldk/status"]) == (
        1e-5, "critical", "critical", "success")


def test_a_locked_store_holds_up_nothing_and_loses_nothing(tmp_path):
    run = start(tmp_path)
    run.log({"x": 0.0}, step=0)
    assert run.flush(timeout=60).complete
    db = SQLiteStorage.get_project_db_path(run.project)
    holder = sqlite3.connect(str(db), timeout=60, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    released = False
    try:
        for step in range(1, 200):
            run.log({"x": float(step)}, step=step)
        assert not run.flush(timeout=0.5).complete  # the rows wait for the lock, in the event log
    finally:
        holder.execute("COMMIT")
        holder.close()
        released = True
    assert released and run.finish(timeout=120).complete
    assert [r["x"] for r in logs(run)] == [float(s) for s in range(200)]


def test_sync_replays_a_jsonl_only_run_and_a_second_sync_adds_nothing(tmp_path):
    name = project()
    run = rldk_track.init(dir=tmp_path, project=name, run_name="offline", config={"lr": 1e-5})
    for step in range(30):
        run.log({"reward/mean": step / 10}, step=step)
    run.alert(rule="kl_spike", message="high", step=12, metric="reward/mean", value=1.2, threshold=1.0)
    run.finish()
    assert not SQLiteStorage.get_project_db_path(name).exists()

    assert cli(["sync", str(tmp_path), "--to", "trackio"]) == 0
    rows = SQLiteStorage.get_logs(name, run_id=run.id)
    assert [r["reward/mean"] for r in rows if "reward/mean" in r] == [s / 10 for s in range(30)]
    assert config(run)["rldk/status"] == "success" and config(run)["lr"] == 1e-5
    assert len(SQLiteStorage.get_alerts(name, run_id=run.id)) == 1

    assert cli(["sync", str(tmp_path), "--to", "trackio", "--from-start"]) == 0
    assert len(SQLiteStorage.get_logs(name, run_id=run.id)) == len(rows)
    assert len(SQLiteStorage.get_alerts(name, run_id=run.id)) == 1


CRASHING_CHILD = textwrap.dedent("""
    import os, signal, sys, threading, time
    import rldk_track
    from rldk_track.backends.trackio import TrackioBackend

    write = TrackioBackend.write
    held = threading.Event()
    def held_back(self, records):  # trackio falls behind from step 50 on
        if any(getattr(r, "step", 0) >= 50 for r in records):
            held.wait()
        write(self, records)
    TrackioBackend.write = held_back

    run = rldk_track.init(backend=["trackio"], dir=sys.argv[1], project=sys.argv[2], run_name="crashy")
    for step in range(50):
        run.log({"x": float(step)}, step=step)
    assert run.flush(timeout=60).complete
    for step in range(50, 100):
        run.log({"x": float(step)}, step=step)
    event_log = run.dir / "events" / f"{run.id}.jsonl"
    deadline = time.monotonic() + 120
    while event_log.read_text().count('"kind":"metrics"') < 100 and time.monotonic() < deadline:
        time.sleep(0.05)  # until the event log has every step (trackio has only the first 50)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_sync_completes_a_killed_run_without_duplicates(tmp_path):
    name = project()
    child = subprocess.run([sys.executable, "-c", CRASHING_CHILD, str(tmp_path), name], capture_output=True,
                           timeout=180)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    (found,) = trackio.Api().runs(name)
    assert [r["x"] for r in SQLiteStorage.get_logs(name, run_id=found.id)] == [float(s) for s in range(50)]

    assert cli(["sync", str(tmp_path), "--to", "trackio"]) == 0
    assert [r["x"] for r in SQLiteStorage.get_logs(name, run_id=found.id)] == [float(s) for s in range(100)]
    assert SQLiteStorage.get_run_config(name, run_id=found.id)["rldk/status"] == "killed"


def test_logging_to_trackio_happens_off_the_training_thread(tmp_path):
    seen: set[str] = set()
    original = TrackioBackend.write

    def recording(self, records):
        seen.add(threading.current_thread().name)
        return original(self, records)

    TrackioBackend.write = recording
    try:
        run = start(tmp_path)
        run.log({"x": 1.0}, step=0)
        run.finish()
    finally:
        TrackioBackend.write = original
    assert seen == {"rldk-trackio"}


def test_trackio_is_chosen_by_the_environment_and_in_a_list(tmp_path, monkeypatch):
    monkeypatch.setenv("RLDK_TRACK_BACKENDS", "trackio,tensorboard")
    run = rldk_track.init(dir=tmp_path, project=project(), run_name="from-env")
    run.log({"x": 1.0}, step=0)
    assert run.finish().complete
    assert [r["x"] for r in logs(run)] == [1.0]
    assert (tmp_path / "tensorboard" / "from-env").is_dir()


def test_a_run_continued_under_another_trackio_dir_says_so(tmp_path, caplog):
    backend = TrackioBackend(RunInfo("moved1", "moved", project(), tmp_path, 1000.0))
    backend.open({"project": backend.project, "trackio_dir": str(tmp_path / "elsewhere")}, Resume())
    assert any("recorded to" in r.getMessage() and "elsewhere" in r.getMessage() for r in caplog.records)
