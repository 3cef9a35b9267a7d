"""The W&B backend against real W&B in offline mode, read back from the ``.wandb`` run file.

Most assertions share one rich run (W&B start-up costs about a second); runs with another
ending, several runs in one process, sync and crash recovery get their own.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import rldk_track
from rldk_track.backends.wandb import (
    MAX_KEY_CHARS,
    MAX_TAG_CHARS,
    MAX_VALUE_CHARS,
    WandbBackend,
    _Names,
    _own_key,
    artifact_name,
    config_key,
    metric_key,
    project_name,
    tag_text,
    wandb_id,
)
from rldk_track.backends.base import RunInfo
from rldk_track.cli import main as cli_main
from rldk_track.backends.wandb_offline import iter_record_bytes, read_run_file
from rldk_track.records import Alert, CheckpointHealth
from rldk_track.vocab.wandb import EXIT_CODES
from rldk_testsupport.wandb_offline import event_log_records, wandb_stored, wandb_table

pytestmark = pytest.mark.usefixtures("wandb_home")

SECRET = "hf_abcdefghijklmnopqrstuvwxyz0123"
LONG_NAME = "k" * 10_000
ODD_NAMES = {"_private": 1.0, "Reward/mean": 2.0, "": 3.0, "line\nbreak": 4.0, LONG_NAME: 5.0, "über/ß 😀": 6.0}
STEPS = [1, 2, 3, 2, 5]  # out of order on purpose


def _child_env() -> dict[str, str]:
    """This process's environment minus W&B's service token: a child would otherwise attach to
    this process's W&B service (W&B exports ``WANDB_SERVICE`` once its service runs)."""
    return {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def rich(tmp_path_factory, wandb_home):
    """One run exercising every record kind and the bad input, finished with success."""
    run_dir = tmp_path_factory.mktemp("wandb-rich")
    staged = run_dir / "outputs"
    (staged / "sub").mkdir(parents=True)
    (staged / "a.txt").write_text("alpha")
    (staged / "sub" / "b.txt").write_text("beta")
    warnings = _Warnings()
    logging.getLogger("rldk_track").addHandler(warnings)
    try:
        run = rldk_track.init(
            backend="wandb", dir=run_dir, project="rldk-tests", run_name="rich-run",
            config={"optim": {"lr": 1e-5, "betas": [0.9, 0.99]}, "hub_token": SECRET, "note": SECRET,
                    "prompt": "x" * 1_000_000, "nan_cfg": float("nan")},
            tags={"model": "llama", "dataset": "d" * 100},
            wandb={"group": "grpo", "job_type": "train", "tags": ["baseline"]},
        )
        for step in STEPS:
            run.log({"reward/mean": step * 0.5, "kl/mean": float("nan") if step == 3 else 0.01 * step}, step=step)
        for step in (6, 7):
            run.log({**ODD_NAMES, "inf": math.inf, "ninf": -math.inf}, step=step)
        run.log({f"many/m{i:04d}": float(i) for i in range(1500)}, step=8)
        run.log_params({"optim": {"lr": 2e-5, "betas": [0.9, 0.99]}})
        run.alert("kl_spike", "KL above threshold", severity="warning", step=3, metric="kl/mean", value=0.9, threshold=0.3)
        run.alert("nan_loss", "loss is NaN", severity="critical", step=4, metric="loss")
        run.emit(Alert(-1, time.time(), 5, "nan_loss", "critical", "loss recovered", state="cleared"))
        run.emit(CheckpointHealth(-1, time.time(), 5, "/ckpt/step-5", 0.75, ("2 layers with large norms",),
                                  {"max_abs": 12.5}, ("lower the lr",)))
        run.log_artifact(b'{"rule": "kl_spike"}\n', name="rldk/alerts.jsonl")
        run.log_artifact(staged, name="outputs")
        run.log_summary({"train_runtime": 12.5, "best/nan": float("nan")})
        report = run.finish()
    finally:
        logging.getLogger("rldk_track").removeHandler(warnings)
    return run_dir, run, report, wandb_stored(run_dir, run.id), warnings.messages


def _series(stored, key):
    return [(row["global_step"], row[key]) for row in stored.history if key in row]


# -- metrics -------------------------------------------------------------------------------
def test_every_record_is_delivered_and_the_run_finishes_cleanly(rich):
    _, _, report, stored, _ = rich
    assert report.complete
    assert stored.exit_code == 0
    assert stored.summary["rldk/status"] == "success"


def test_metrics_keep_their_values_steps_and_count(rich):
    _, _, _, stored, _ = rich
    assert _series(stored, "reward/mean") == [(s, s * 0.5) for s in STEPS]


def test_steps_going_backwards_are_kept_on_the_global_step_axis(rich):
    _, _, _, stored, _ = rich
    assert [s for s, _ in _series(stored, "reward/mean")] == STEPS
    assert [row["_step"] for row in stored.history] == list(range(len(stored.history)))
    assert {"name": "", "glob_name": "*", "step_metric": "global_step"} in stored.metrics


def test_history_timestamps_are_the_records_wall_times(rich):
    run_dir, run, _, stored, _ = rich
    logged = [r.wall_time for r in event_log_records(run_dir, run.id, "metrics")]
    from_metrics = [row for row in stored.history if "alerts/count" not in row]
    assert [row["_timestamp"] for row in from_metrics] == logged


def test_nan_and_infinities_are_stored_as_such(rich):
    _, _, _, stored, _ = rich
    kl = dict(_series(stored, "kl/mean"))
    assert math.isnan(kl[3])
    assert _series(stored, "inf") == [(6, math.inf), (7, math.inf)]
    assert _series(stored, "ninf") == [(6, -math.inf), (7, -math.inf)]


def test_more_than_a_thousand_metrics_in_one_record_make_one_row(rich):
    _, _, _, stored, _ = rich
    rows = [row for row in stored.history if any(k.startswith("many/") for k in row)]
    assert len(rows) == 1
    assert rows[0]["global_step"] == 8
    assert {k: v for k, v in rows[0].items() if k.startswith("many/")} == {f"many/m{i:04d}": i for i in range(1500)}


def test_odd_names_are_adapted_to_wandb_rules_and_never_merged(rich):
    _, _, _, stored, _ = rich
    row = next(r for r in stored.history if r["global_step"] == 6)
    stored_names = {metric_key(name) for name in ODD_NAMES} - {"Reward/mean"}
    assert stored_names <= row.keys()
    assert row["private"] == 1.0 and row["unnamed"] == 3.0 and row["line_break"] == 4.0 and row["über/ß 😀"] == 6.0
    long_key = metric_key(LONG_NAME)
    assert len(long_key) == MAX_KEY_CHARS and row[long_key] == 5.0
    cased = [k for k in row if k.casefold().startswith("reward/mean")]
    assert len(cased) == 1 and cased[0].startswith("Reward/mean~") and row[cased[0]] == 2.0


def test_each_adapted_name_is_reported_once(rich):
    _, _, _, _, messages = rich
    renamed = [m for m in messages if "is recorded as" in m]
    assert renamed and len(renamed) == len(set(renamed))


def test_the_name_map_is_logged_as_an_artifact(rich):
    _, _, _, stored, _ = rich
    artifact = stored.artifact(f"run-{stored.run_id}-rldk-key-map")
    mapping = json.loads(Path(artifact.entries["wandb_key_map.json"]).read_text())
    assert mapping["metrics"]["_private"] == "private"
    assert mapping["metrics"][LONG_NAME] == metric_key(LONG_NAME)


# -- config, tags, summary -----------------------------------------------------------------
def test_config_is_nested_as_given_and_takes_later_values(rich):
    _, _, _, stored, _ = rich
    assert stored.config["optim"] == {"lr": 2e-5, "betas": [0.9, 0.99]}


def test_secrets_never_reach_wandb(rich):
    run_dir, _, _, stored, _ = rich
    assert stored.config["hub_token"] == "***REDACTED***"
    assert stored.config["note"] == "***REDACTED***"
    for path in (run_dir / "wandb").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_huge_config_values_are_cut_and_nan_config_is_kept_as_text(rich):
    _, _, _, stored, _ = rich
    assert stored.config["prompt"].startswith("x" * MAX_VALUE_CHARS)
    assert len(stored.config["prompt"]) < MAX_VALUE_CHARS + 100
    assert stored.config["nan_cfg"] == "NaN"


def test_run_identity_group_and_tags(rich):
    _, run, _, stored, _ = rich
    assert (stored.run_id, stored.name, stored.project) == (run.id, "rich-run", "rldk-tests")
    assert (stored.group, stored.job_type) == ("grpo", "train")
    assert "baseline" in stored.tags and "model=llama" in stored.tags
    assert all(1 <= len(t) <= MAX_TAG_CHARS for t in stored.tags)


def test_a_tag_too_long_for_wandb_keeps_its_full_value_in_the_summary(rich):
    _, _, _, stored, _ = rich
    assert tag_text("dataset", "d" * 100) in stored.tags
    assert stored.summary["rldk/tag/dataset"] == "d" * 100


def test_summary_values_are_stored_and_nan_is_kept_as_text(rich):
    _, _, _, stored, _ = rich
    assert stored.summary["train_runtime"] == 12.5
    assert stored.summary["best/nan"] == "NaN"


# -- alerts, checkpoint health, artifacts --------------------------------------------------
def test_alerts_are_in_the_summary_and_health_counts_only_those_not_cleared(rich):
    _, _, _, stored, _ = rich
    assert stored.summary["rldk/alert/kl_spike"] == "warning"
    assert stored.summary["rldk/alert/nan_loss"] == "cleared"
    assert stored.summary["rldk/health"] == "warning"


def test_alerts_count_is_a_metric_at_each_raised_alerts_step(rich):
    _, _, _, stored, _ = rich
    assert _series(stored, "alerts/count") == [(3, 1), (4, 2)]


def test_the_alert_log_is_a_table_artifact(rich):
    _, _, _, stored, _ = rich
    table = wandb_table(stored.artifact(f"run-{stored.run_id}-rldk-alerts"), "alerts")
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert [(r["rule"], r["severity"], r["state"], r["step"]) for r in rows] == [
        ("kl_spike", "warning", "raised", 3), ("nan_loss", "critical", "raised", 4), ("nan_loss", "critical", "cleared", 5),
    ]


def test_checkpoint_health_is_a_summary_and_a_report_artifact_but_no_history_row(rich):
    _, _, _, stored, _ = rich
    # the checkpoint/* series are the analyzer's Metrics record, never rows derived from this one
    assert not any(key.startswith("checkpoint/") for row in stored.history for key in row)
    assert stored.summary["rldk/checkpoint"]["path"] == "/ckpt/step-5"
    artifact = stored.artifact(f"run-{stored.run_id}-checkpoint-health")
    assert "step-5" in artifact.aliases
    report = json.loads(Path(artifact.entries["checkpoint_health.json"]).read_text())
    assert report["score"] == 0.75 and report["stats"] == {"max_abs": 12.5}


def test_file_and_directory_artifacts_are_wandb_artifacts_with_their_content(rich):
    _, _, _, stored, _ = rich
    notes = stored.artifact(f"run-{stored.run_id}-rldk-alerts.jsonl")
    assert Path(notes.entries["rldk/alerts.jsonl"]).read_bytes() == b'{"rule": "kl_spike"}\n'
    outputs = stored.artifact(f"run-{stored.run_id}-outputs")
    assert {p: Path(f).read_text() for p, f in outputs.entries.items()} == {"outputs/a.txt": "alpha", "outputs/sub/b.txt": "beta"}


# -- how a run ends ------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["failed", "killed"])
def test_the_finish_status_sets_the_wandb_exit_code(tmp_path, status):
    run = rldk_track.init(backend="wandb", dir=tmp_path, project="rldk-tests")
    run.log({"x": 1.0}, step=1)
    run.finish(status)
    stored = wandb_stored(tmp_path, run.id)
    assert stored.exit_code == EXIT_CODES[status] != 0
    assert stored.summary["rldk/status"] == status


def test_several_runs_and_the_users_own_wandb_run_share_one_process(tmp_path):
    import wandb

    users = wandb.init(project="user-project", id="users-own", dir=str(tmp_path), settings=wandb.Settings(console="off"))
    try:
        a = rldk_track.init(backend="wandb", dir=tmp_path, project="rldk-tests", run_name="a")
        b = rldk_track.init(backend="wandb", dir=tmp_path, project="rldk-tests", run_name="b")
        for step in range(3):
            a.log({"only_a": float(step)}, step=step)
            b.log({"only_b": float(step)}, step=step)
            wandb.log({"only_user": float(step)})
        assert a.flush(60) and b.flush(60)
        assert wandb.init(project="user-project", dir=str(tmp_path)) is users  # W&B hands the user their own run back
        assert a.finish() and b.finish()
        assert wandb.run is users
    finally:
        users.finish()
    stored_a, stored_b = wandb_stored(tmp_path, a.id), wandb_stored(tmp_path, b.id)
    stored_user = wandb_stored(tmp_path, "users-own")
    assert _series(stored_a, "only_a") == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert _series(stored_b, "only_b") == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert all("only_a" not in row and "only_b" not in row for row in stored_user.history)
    assert [row["only_user"] for row in stored_user.history] == [0.0, 1.0, 2.0]


def test_a_plain_wandb_init_by_the_user_never_returns_or_finishes_an_rldk_run(tmp_path):
    import wandb

    run = rldk_track.init(backend="wandb", dir=tmp_path, project="rldk-tests")
    assert run.flush(60)
    users = wandb.init(project="user-project", dir=str(tmp_path), settings=wandb.Settings(console="off"))
    try:
        assert users.id != run.id
    finally:
        users.finish()
    run.log({"after_user_finish": 1.0}, step=1)
    assert run.finish()
    assert _series(wandb_stored(tmp_path, run.id), "after_user_finish") == [(1, 1.0)]


# -- replay and recovery -------------------------------------------------------------------
def test_sync_replays_a_jsonl_only_run_into_wandb_and_a_second_sync_adds_nothing(tmp_path):
    run = rldk_track.init(backend="jsonl", dir=tmp_path, project="rldk-tests", config={"lr": 0.1})
    for step in range(20):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    run.alert("kl_spike", "high", step=10)
    assert run.finish()

    assert cli_main(["sync", str(tmp_path), "--to", "wandb"]) == 0
    stored = wandb_stored(tmp_path, run.id)
    logged = event_log_records(tmp_path, run.id, "metrics")
    assert _series(stored, "loss") == [(r.step, r.values["loss"]) for r in logged]
    assert [row["_timestamp"] for row in stored.history if "loss" in row] == [r.wall_time for r in logged]
    assert stored.config == {"lr": 0.1} and stored.summary["rldk/alert/kl_spike"] == "warning"
    assert stored.exit_code == 0

    files_before = sorted((tmp_path / "wandb").rglob("*.wandb"))
    assert cli_main(["sync", str(tmp_path), "--to", "wandb"]) == 0
    assert sorted((tmp_path / "wandb").rglob("*.wandb")) == files_before
    assert len(wandb_stored(tmp_path, run.id).history) == len(stored.history)


CRASH_STEPS = 400
_CRASHING_CHILD = textwrap.dedent(
    f"""
    import json, os, signal, sys, time
    import rldk_track
    run = rldk_track.init(backend="wandb", dir=sys.argv[1], run_id="crashed", project="rldk-tests")
    for step in range({CRASH_STEPS}):
        run.log({{f"m{{i:02d}}": float(step) for i in range(20)}}, step=step)
    assert run.flush(60)
    cursor = os.path.join(sys.argv[1], "events", "crashed.wandb.cursor.json")
    while json.load(open(cursor))["seq"] < {CRASH_STEPS}:  # the cursor says: all delivered
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.fixture(scope="module")
def crashed(tmp_path_factory, wandb_home):
    """A run directory whose process was SIGKILLed after W&B had accepted every metric."""
    run_dir = tmp_path_factory.mktemp("wandb-crashed")
    child = subprocess.run([sys.executable, "-c", _CRASHING_CHILD, str(run_dir)], env=_child_env(), cwd=run_dir, timeout=120)
    assert child.returncode == -signal.SIGKILL
    return run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_dir, target, symlinks=True)
    return target


def test_sync_after_a_crash_delivers_what_wandb_lost_into_the_same_run_and_ends_it_as_killed(crashed, tmp_path, caplog):
    run_dir = _copy(crashed, tmp_path)
    (segment,) = (run_dir / "wandb").rglob("run-crashed.wandb")
    with open(segment, "r+b") as f:  # W&B writes 32 KiB blocks; a killed service can drop the last ones
        f.truncate(min(segment.stat().st_size, 2 * 32 * 1024))
    assert len(wandb_stored(run_dir, "crashed", finished=False).history) < CRASH_STEPS
    assert cli_main(["sync", str(run_dir)]) == 0
    stored = wandb_stored(run_dir, "crashed")
    assert len(stored.files) == 2 and stored.resumed  # a second segment of the same W&B run
    assert _series(stored, "m00") == [(s, float(s)) for s in range(CRASH_STEPS)]
    assert stored.exit_code == EXIT_CODES["killed"] and stored.summary["rldk/status"] == "killed"
    assert any("W&B lost" in m for m in caplog.messages)
    assert cli_main(["sync", str(run_dir)]) == 0
    assert len(wandb_stored(run_dir, "crashed").files) == 2


def test_sync_never_resends_what_wandb_kept_even_if_the_cursor_lags_behind(crashed, tmp_path):
    run_dir = _copy(crashed, tmp_path)
    cursor = run_dir / "events" / "crashed.wandb.cursor.json"
    cursor.write_text(json.dumps({**json.loads(cursor.read_text()), "seq": 0}))  # as if persisted late
    assert cli_main(["sync", str(run_dir)]) == 0
    assert _series(wandb_stored(run_dir, "crashed"), "m00") == [(s, float(s)) for s in range(CRASH_STEPS)]


def test_resuming_an_rldk_run_continues_its_wandb_run(tmp_path):
    first = rldk_track.init(backend="wandb", dir=tmp_path, run_id="resumed", project="rldk-tests")
    first.log({"x": 0.0}, step=0)
    assert first.finish()

    second = rldk_track.init(backend="wandb", dir=tmp_path, run_id="resumed", project="rldk-tests")
    second.log({"x": 1.0}, step=1)
    assert second.finish()
    stored = wandb_stored(tmp_path, "resumed")
    assert len(stored.files) == 2 and stored.resumed
    assert _series(stored, "x") == [(0, 0.0), (1, 1.0)]


_EXITING_CHILD = textwrap.dedent(
    """
    import sys, time
    import rldk_track
    run = rldk_track.init(backend="wandb", dir=sys.argv[1], run_id="exits", project="rldk-tests")
    if sys.argv[2] == "late":
        assert run.flush(60)  # W&B is up before the script ends
    for step in range(50):
        run.log({"x": float(step)}, step=step)
    """
)


@pytest.mark.parametrize("when", ["early", "late"])
def test_a_script_that_ends_without_finish_delivers_everything_before_wandb_shuts_down(tmp_path, when):
    child = subprocess.run([sys.executable, "-c", _EXITING_CHILD, str(tmp_path), when], capture_output=True, text=True,
                           env={**_child_env(), "RLDK_EXIT_TIMEOUT": "20"}, cwd=tmp_path, timeout=120)
    assert child.returncode == 0, child.stderr
    assert "not yet delivered" not in child.stderr  # no waiting out the exit timeout
    stored = wandb_stored(tmp_path, "exits")
    assert len(_series(stored, "x")) == 50 and stored.exit_code == 0


def test_online_mode_without_credentials_records_offline_instead_of_prompting(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("WANDB_MODE")
    run = rldk_track.init(backend="wandb", dir=tmp_path, project="rldk-tests")
    run.log({"x": 1.0}, step=1)
    assert run.finish()
    assert _series(wandb_stored(tmp_path, run.id), "x") == [(1, 1.0)]
    assert any("no W&B credentials" in m for m in caplog.messages)


# -- the service recipes in backends/wandb/ -------------------------------------------------
RECIPES = Path(__file__).resolve().parents[2] / "backends" / "wandb"


def test_the_sync_recipe_completes_a_jsonl_only_run_as_wandb_and_hands_it_to_wandb_sync(tmp_path):
    run = rldk_track.init(backend="jsonl", dir=tmp_path, project="rldk-tests")
    run.log({"x": 1.0}, step=1)
    assert run.finish()
    out = subprocess.run([str(RECIPES / "sync.sh"), str(tmp_path), "--dry-run"], env={**_child_env(), "PYTHON": sys.executable},
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"run-{run.id}.wandb" in out.stdout + out.stderr  # wandb sync --dry-run: "Would sync"
    assert _series(wandb_stored(tmp_path, run.id), "x") == [(1, 1.0)]


def test_the_status_recipe_lists_each_run_with_its_segments_rows_and_exit_code(rich, tmp_path):
    run_dir, run, _, stored, _ = rich
    out = subprocess.run([str(RECIPES / "status.sh"), str(run_dir)], env={**_child_env(), "PYTHON": sys.executable},
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    line = next(l for l in out.stdout.splitlines() if l.startswith(run.id))
    assert line.split()[-4:] == ["1", str(len(stored.history)), "exit", "0"]


# -- W&B's rules as pure functions (no W&B run) --------------------------------------------
@pytest.mark.parametrize(
    ("name", "key"),
    [("reward/mean", "reward/mean"), ("_step", "step"), ("__", "unnamed"), ("a\tb", "a_b"), ("über", "über")],
)
def test_metric_keys_follow_wandb_rules(name, key):
    assert metric_key(name) == key


def test_config_keys_lose_the_dashes_and_underscores_wandb_strips_or_hides():
    assert config_key("--lr-") == "lr" and config_key("_wandb") == "wandb"


def test_names_that_differ_only_in_case_or_collide_after_adaptation_get_distinct_keys():
    names = _Names(metric_key, {}, str.casefold, _own_key, "metric")
    keys = [names(n) for n in ("loss", "Loss", "_loss", "global_step", "rldk/health")]
    assert keys[0] == "loss"
    assert len({k.casefold() for k in keys}) == 5
    assert names("Loss") == keys[1]  # stable


def test_a_resumed_name_map_keeps_earlier_choices():
    before = _Names(metric_key, {}, str.casefold, _own_key, "metric")
    before("_loss")
    after = _Names(metric_key, before.keys, str.casefold, _own_key, "metric")
    assert after("loss") != "loss"


def test_run_ids_and_artifact_names_use_only_characters_wandb_accepts():
    assert wandb_id("abc123") == "abc123"
    assert wandb_id("exp/1:a b").replace("-", "").isalnum() and wandb_id("exp/1:a b") != wandb_id("exp/1:a_c")
    assert artifact_name("run-x-rldk/alerts.jsonl") == "run-x-rldk-alerts.jsonl"
    assert len(artifact_name("a" * 300)) == 128


def test_project_names_drop_characters_wandb_refuses():
    assert project_name("team/rlhf:v2") == "team-rlhf-v2"


def test_project_comes_from_the_option_then_wandb_project_then_the_run(monkeypatch, tmp_path):
    info = RunInfo("id1", "name", "run-project", tmp_path, 0.0)
    monkeypatch.setenv("WANDB_PROJECT", "env-project")
    assert WandbBackend(info, {"project": "opt"})._project() == "opt"
    assert WandbBackend(info)._project() == "env-project"
    monkeypatch.delenv("WANDB_PROJECT")
    assert WandbBackend(info)._project() == "run-project"


def test_an_unknown_option_fails_fast_with_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="init_timeout"):
        rldk_track.init(backend="wandb", dir=tmp_path, wandb={"projct": "x"})


# -- the run-file reader -------------------------------------------------------------------
def test_the_reader_reassembles_records_split_across_blocks(rich):
    _, _, _, stored, _ = rich
    assert max(len(r) for r in iter_record_bytes(stored.files[0])) > 2 * 32 * 1024


def test_the_reader_returns_what_precedes_a_record_cut_by_a_crash(rich, tmp_path):
    _, _, _, stored, _ = rich
    data = stored.files[0].read_bytes()
    cut = tmp_path / "run-cut.wandb"
    cut.write_bytes(data[: len(data) - 100])
    partial = read_run_file(cut)
    assert partial.run_id == stored.run_id and partial.exit_code is None
    assert 0 < len(partial.history) <= len(stored.history)
