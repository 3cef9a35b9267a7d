"""The Run front door: what a training loop hands it ends up in the event log, converted or
reported, and nothing raises out of ``run.log``."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

import rldk_track
from rldk_track.backends import BackendUnavailable
from rldk_track.eventlog import read_records
from rldk_track.records import Alert, Artifact, Metrics, Params, RunEnd, RunStart, Tags


def records_of(run):
    return [r for _, r in read_records(run.dir / "events" / f"{run.id}.jsonl")]


def metrics_of(run):
    return [r for r in records_of(run) if isinstance(r, Metrics)]


def test_default_backend_is_the_local_event_log(tmp_path):
    run = rldk_track.init(dir=tmp_path)
    run.log({"reward/mean": 1.5}, step=3)
    assert run.finish().complete
    assert run.backends == [] and run.event_log == tmp_path / "events" / f"{run.id}.jsonl"
    kinds = [r.kind for r in records_of(run)]
    assert kinds == ["run_start", "metrics", "run_end"]
    assert metrics_of(run)[0].values == {"reward/mean": 1.5}
    assert metrics_of(run)[0].step == 3


def test_values_of_every_common_type_become_floats(tmp_path):
    run = rldk_track.init(dir=tmp_path)
    run.log(
        {
            "py_int": 3, "py_float": 0.5, "bool": True, "np_f32": np.float32(0.25), "np_i64": np.int64(7),
            "np_0d": np.array(1.5), "np_1el": np.array([2.5]), "t_0d": torch.tensor(0.75),
            "t_1el": torch.tensor([4.0]), "t_bf16": torch.tensor(1.0, dtype=torch.bfloat16), "none": None,
        },
        step=0,
    )
    run.finish()
    values = metrics_of(run)[0].values
    assert values == {
        "py_int": 3.0, "py_float": 0.5, "bool": 1.0, "np_f32": 0.25, "np_i64": 7.0, "np_0d": 1.5,
        "np_1el": 2.5, "t_0d": 0.75, "t_1el": 4.0, "t_bf16": 1.0,
    }
    assert all(type(v) is float for v in values.values())


def test_a_none_value_is_left_out_with_a_note_and_one_warning(tmp_path, caplog):
    run = rldk_track.init(dir=tmp_path)
    with caplog.at_level(logging.WARNING, "rldk_track"):
        for step in range(3):
            run.log({"reward": None, "kl": 0.1}, step=step)
    run.finish()
    rows = metrics_of(run)
    assert [r.values for r in rows] == [{"kl": 0.1}] * 3
    assert all("dropped 'reward': None (no value)" in r.notes for r in rows)
    assert sum("'reward' is None" in m for m in caplog.messages) == 1


def test_nan_and_inf_are_kept_and_flagged_once(tmp_path, caplog):
    run = rldk_track.init(dir=tmp_path)
    with caplog.at_level(logging.WARNING, "rldk_track"):
        for step in range(3):
            run.log({"kl": float("nan"), "loss": float("inf"), "neg": -math.inf}, step=step)
    run.finish()
    rows = metrics_of(run)
    assert len(rows) == 3
    assert math.isnan(rows[0].values["kl"]) and rows[0].values["loss"] == math.inf and rows[0].values["neg"] == -math.inf
    assert any("non-finite 'kl'" in n for n in rows[0].notes)
    assert sum("'kl' is nan" in m for m in caplog.messages) == 1


def test_values_that_are_not_scalars_are_reported_once_and_noted(tmp_path, caplog):
    run = rldk_track.init(dir=tmp_path)
    with caplog.at_level(logging.WARNING, "rldk_track"):
        for step in range(5):
            run.log({"text": "high", "vector": torch.ones(4), "obj": object(), "ok": 1.0}, step=step)
    run.finish()
    rows = metrics_of(run)
    assert [r.values for r in rows] == [{"ok": 1.0}] * 5
    assert any("dropped 'vector'" in n and "4 elements" in n for n in rows[0].notes)
    for key in ("text", "vector", "obj"):
        assert sum(f"metric '{key}'" in m for m in caplog.messages) == 1


def test_steps_default_to_counting_up_and_may_go_backwards(tmp_path, caplog):
    run = rldk_track.init(dir=tmp_path)
    run.log({"a": 1})
    run.log({"a": 2})
    with caplog.at_level(logging.WARNING, "rldk_track"):
        run.log({"a": 3}, step=10)
        run.log({"a": 4}, step=5)
        run.log({"a": 5}, step=np.int64(6))
    run.finish()
    assert [r.step for r in metrics_of(run)] == [0, 1, 10, 5, 6]
    assert sum("went backwards" in m for m in caplog.messages) == 1


def test_long_and_unicode_names_are_kept_in_the_event_log(tmp_path):
    long_name = "k" * 10_000
    run = rldk_track.init(dir=tmp_path)
    run.log({long_name: 1.0, "報酬/平均": 2.0, 42: 3.0, " padded ": 4.0}, step=0)
    run.finish()
    assert metrics_of(run)[0].values == {long_name: 1.0, "報酬/平均": 2.0, "42": 3.0, " padded ": 4.0}


def test_config_is_made_json_able_and_secrets_redacted(tmp_path):
    from dataclasses import dataclass

    @dataclass
    class Args:
        learning_rate: float = 1e-5
        hub_token: str = "hf_abcdefghijklmnopqrstuvwx"
        pad_token: str = "<|pad|>"

    big = "x" * 1_000_000
    run = rldk_track.init(
        dir=tmp_path,
        config={"args": Args(), "dtype": torch.float16, "WANDB_API_KEY": "0123456789abcdef", "big": big,
                "openai": "sk-proj-abcdefghijklmnopqrstuvwx", "max_new_tokens": 64},
    )
    run.finish()
    params = next(r for r in records_of(run) if isinstance(r, Params)).values
    assert params["args"] == {"learning_rate": 1e-5, "hub_token": "***REDACTED***", "pad_token": "<|pad|>"}
    assert params["dtype"] == "torch.float16"
    assert params["WANDB_API_KEY"] == "***REDACTED***"
    assert params["openai"] == "***REDACTED***"
    assert params["max_new_tokens"] == 64
    assert params["big"] == big
    text = (tmp_path / "events" / f"{run.id}.jsonl").read_text()
    assert "hf_abcdefghijklmnopqrstuvwx" not in text and "0123456789abcdef" not in text


def test_tags_alerts_and_artifacts_are_records(tmp_path):
    source = tmp_path / "report.txt"
    source.write_text("v1")
    run = rldk_track.init(dir=tmp_path / "runs", tags={"team": "rl", "seed": 3})
    run.log({"kl": 0.9}, step=4)
    run.alert("kl_spike", "KL jumped", severity="critical", metric="kl", value=np.float32(0.9), threshold=0.3)
    run.log_artifact(source)
    run.log_artifact(b'{"a": 1}', name="rldk/extra.json")
    run.finish()
    source.write_text("v2 (changed after logging)")
    recs = records_of(run)
    assert next(r for r in recs if isinstance(r, Tags)).values == {"team": "rl", "seed": "3"}
    alert = next(r for r in recs if isinstance(r, Alert))
    assert (alert.rule, alert.severity, alert.step, alert.value, alert.threshold) == ("kl_spike", "critical", 4, pytest.approx(0.9), 0.3)
    artifacts = {r.name: r for r in recs if isinstance(r, Artifact)}
    assert open(artifacts["report.txt"].path).read() == "v1"
    assert open(artifacts["rldk/extra.json"].path).read() == '{"a": 1}'


def test_programmer_errors_fail_fast_with_a_fix(tmp_path):
    with pytest.raises(ValueError, match="unknown backend 'mlflw'"):
        rldk_track.init(backend="mlflw", dir=tmp_path)
    run = rldk_track.init(dir=tmp_path)
    with pytest.raises(ValueError, match="severity"):
        run.alert("x", "y", severity="bad")
    with pytest.raises(ValueError, match="needs name="):
        run.log_artifact(b"data")
    with pytest.raises(ValueError, match="status"):
        run.finish(status="done")
    run.finish()


def test_a_missing_tracker_package_says_which_extra_to_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(BackendUnavailable, match=r"rldk-track\[wandb\]"):
        rldk_track.init(backend="wandb", dir=tmp_path)


def test_logging_after_finish_is_reported_not_raised(tmp_path, caplog):
    run = rldk_track.init(dir=tmp_path)
    run.finish()
    with caplog.at_level(logging.WARNING, "rldk_track"):
        run.log({"a": 1})
        run.log({"a": 2})
    assert sum("after finish()" in m for m in caplog.messages) == 1
    assert run.finish().complete  # idempotent


def test_context_manager_records_the_status(tmp_path):
    with rldk_track.init(dir=tmp_path / "ok") as ok:
        ok.log({"a": 1})
    with pytest.raises(RuntimeError):
        with rldk_track.init(dir=tmp_path / "bad") as bad:
            raise RuntimeError("boom")
    assert records_of(ok)[-1] == RunEnd(seq=records_of(ok)[-1].seq, wall_time=records_of(ok)[-1].wall_time, status="success")
    assert records_of(bad)[-1].status == "failed"


def test_run_identity(tmp_path):
    run = rldk_track.init(dir=tmp_path, project="grpo", run_name="lr3e-6", run_id="abc123def456")
    run.finish()
    start = records_of(run)[0]
    assert (run.id, run.name, run.project, run.dir) == ("abc123def456", "lr3e-6", "grpo", tmp_path)
    assert isinstance(start, RunStart) and (start.run_id, start.name, start.project) == ("abc123def456", "lr3e-6", "grpo")


def test_timer_then_log_records_each_timing_at_the_step_it_timed(tmp_path):
    run = rldk_track.init(dir=tmp_path)
    for step in range(3):  # as the README shows: time the stages, then log the step
        with run.timer("rollout"):
            sum(range(1000))
        with run.timer("update"):
            pass
        run.log({"reward/mean": float(step)}, step=step)
    run.finish()
    timed = [(m.step, sorted(m.values)) for m in metrics_of(run)]
    assert timed == [(step, ["perf/rollout_s", "perf/update_s", "reward/mean"]) for step in range(3)]


def test_timer_with_a_step_logs_at_once_and_a_trailing_timing_lands_on_the_last_step(tmp_path):
    run = rldk_track.init(dir=tmp_path)
    run.log({"a": 1}, step=7)
    with run.timer("save", step=7):
        pass
    with run.timer("eval"):
        sum(range(1000))
    run.finish()
    assert [(m.step, set(m.values)) for m in metrics_of(run)] == [(7, {"a"}), (7, {"perf/save_s"}), (7, {"perf/eval_s"})]
    assert metrics_of(run)[-1].values["perf/eval_s"] >= 0


def test_backends_from_the_environment(tmp_path, monkeypatch, fake_backend):
    monkeypatch.setenv("RLDK_TRACK_BACKENDS", "jsonl, fake")
    run = rldk_track.init(dir=tmp_path)
    run.finish()
    assert run.backends == ["fake"] and run.event_log.exists()


def test_jsonl_names_the_event_log_which_is_no_tracker_backend(tmp_path, fake_backend):
    from rldk_track import backends

    assert "jsonl" not in backends.available() and "fake" in backends.available()
    with pytest.raises(ValueError, match="'jsonl' is the local event log, not a tracker backend"):
        backends.resolve("jsonl")
    alone = rldk_track.init(backend="jsonl", dir=tmp_path)
    alone.log({"x": 1.0}, step=0)
    assert alone.finish().complete and alone.backends == []
    both = rldk_track.init(backend=["jsonl", "fake"], dir=tmp_path)
    both.finish()
    assert both.backends == ["fake"] and both.event_log == tmp_path / "events" / f"{both.id}.jsonl"
    assert [r.kind for r in records_of(alone)] == ["run_start", "metrics", "run_end"]
    assert [r.kind for r in records_of(both)] == ["run_start", "run_end"]
    assert next(r for r in records_of(both) if isinstance(r, RunStart)).backends == {"fake": {}}


def test_without_the_event_log_the_run_names_none(tmp_path, fake_backend, monkeypatch):
    monkeypatch.setenv("RLDK_DISABLE_JSONL", "1")
    run = rldk_track.init(backend="fake", dir=tmp_path)
    run.finish()
    assert run.event_log is None and run.backends == ["fake"]
    with pytest.raises(ValueError, match="RLDK_DISABLE_JSONL=1 turns the event log off"):
        rldk_track.init(backend="jsonl", dir=tmp_path)


def test_a_detached_run_records_nothing_and_does_not_end_its_log(tmp_path):
    run = rldk_track.init(dir=tmp_path)
    run.log({"x": 1.0}, step=0)
    run.flush(10)
    run.detach()
    run.log({"x": 2.0}, step=1)
    assert not run.active and run.finish().complete
    assert [r.kind for r in records_of(run)] == ["run_start", "metrics"]  # no run_end: sync ends it
    from rldk_track import lifecycle

    assert run not in lifecycle._live  # interpreter exit has nothing left to finish


def test_import_changes_no_process_hook_until_the_first_run_starts(tmp_path):
    import subprocess
    import sys

    script = f"""
import os, sys
ours = []
register = os.register_at_fork
def spy(**hooks):
    ours.extend(h for h in hooks.values() if getattr(h, "__module__", "") == "rldk_track.lifecycle")
    register(**hooks)
os.register_at_fork = spy
exit_before, builtin_exit = sys.exit, exit
import rldk_track
assert sys.excepthook is sys.__excepthook__ and ours == [] and sys.exit is exit_before, "changed at import"
assert exit is builtin_exit, "exit changed at import"
first = rldk_track.init(dir={str(tmp_path)!r})
assert sys.excepthook is not sys.__excepthook__ and len(ours) == 1, "not installed at the first run"
assert sys.exit is not exit_before, "sys.exit not noted at the first run"
assert exit is not builtin_exit and repr(exit) == repr(builtin_exit), "exit not noted at the first run"
second = rldk_track.init(dir={str(tmp_path)!r})
assert len(ours) == 1, "installed twice"
first.finish(); second.finish()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
