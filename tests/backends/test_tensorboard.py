"""The TensorBoard backend, read back with TensorBoard's own EventAccumulator (every point kept)
and, once, through a real TensorBoard server started by the recipe in backends/tensorboard.

Scalars are float32 in TensorBoard, so a stored value equals the logged value rounded to float32.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import rldk_track
from rldk_track.backends.base import Resume, RunInfo
from rldk_track.eventlog import read_records
from rldk_track.backends.tensorboard import (
    _whole_events,
    MAX_HPARAM_CHARS,
    MAX_TAG_BYTES,
    REWRITE_FACTOR,
    REWRITE_FREE_BYTES,
    TensorBoardBackend,
)
from rldk_track.cli import main as cli
from rldk_track.layout import event_logs
from rldk_track.readers.tensorboard import read_run_dir
from rldk_track.records import CheckpointHealth, Metrics, Params, RunEnd, Tags
from rldk_testsupport.tensorboard import read_tb

INF = math.inf


def f32(value: float) -> float:
    """``value`` as TensorBoard stores a scalar (float32)."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def start(tmp_path: Path, name: str = "grpo", **kwargs) -> rldk_track.Run:
    return rldk_track.init(backend=["tensorboard"], dir=tmp_path, run_name=name, **kwargs)


def tb_dir(run: rldk_track.Run) -> Path:
    return run.dir / "tensorboard" / run.name


def logged_metrics(run_dir: Path) -> list[Metrics]:
    """The metrics records of the run's event log (our write-ahead log), in order."""
    (log,) = event_logs(run_dir)
    return [r for _, r in read_records(log) if isinstance(r, Metrics)]


def fenced_json(text: str) -> object:
    return json.loads(text.split("\n", 1)[1].rsplit("\n", 1)[0])


def tb_warnings(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if "tensorboard:" in r.getMessage() and words in r.getMessage()]


# -- scalars ---------------------------------------------------------------------------------
def test_metrics_are_scalars_at_their_steps_with_their_wall_times(tmp_path):
    run = start(tmp_path)
    for step in range(20):
        run.log({"reward/mean": 0.1 * step, "kl/mean": 1e-3 * step**2}, step=step)
    assert run.finish().complete
    stored = read_tb(tb_dir(run)).scalars
    logged = logged_metrics(tmp_path)
    assert len(logged) == 20
    for key in ("reward/mean", "kl/mean"):
        assert stored[key] == [(m.step, f32(m.values[key]), m.wall_time) for m in logged]


def test_nan_and_infinities_are_kept(tmp_path):
    run = start(tmp_path)
    for step, value in enumerate([1.0, math.nan, INF, -INF, 2.0]):
        run.log({"loss/policy": value}, step=step)
    run.finish()
    values = [v for _, v, _ in read_tb(tb_dir(run)).scalars["loss/policy"]]
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2:] == [INF, -INF, 2.0]


def test_steps_out_of_order_are_kept_as_logged_and_reported_once(tmp_path, caplog):
    steps = [0, 1, 2, 5, 3, 4, 4, 6]
    run = start(tmp_path)
    with caplog.at_level(logging.WARNING, "rldk_track"):
        for i, step in enumerate(steps):
            run.log({"x": float(i)}, step=step)
        run.finish()
    assert [(s, v) for s, v, _ in read_tb(tb_dir(run)).scalars["x"]] == [(s, float(i)) for i, s in enumerate(steps)]
    assert len(tb_warnings(caplog, "went back from step")) == 1


def test_values_beyond_float32_become_infinite_and_are_reported_once(tmp_path, caplog):
    run = start(tmp_path)
    with caplog.at_level(logging.WARNING, "rldk_track"):
        run.log({"huge": 1e39, "tiny_neg": -1e300}, step=0)
        run.finish()
    stored = read_tb(tb_dir(run)).scalars
    assert [v for _, v, _ in stored["huge"]] == [INF]
    assert [v for _, v, _ in stored["tiny_neg"]] == [-INF]
    assert len(tb_warnings(caplog, "float32")) == 1


def test_written_points_are_readable_before_the_run_finishes(tmp_path):
    run = start(tmp_path)
    run.log({"reward/mean": 0.5}, step=0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not tb_dir(run).is_dir():
        time.sleep(0.05)
    found = []
    while time.monotonic() < deadline and not found:
        found = read_tb(tb_dir(run)).scalars.get("reward/mean", [])
        time.sleep(0.05)
    run.finish()
    assert [(s, v) for s, v, _ in found] == [(0, 0.5)]


# -- names -----------------------------------------------------------------------------------
def test_odd_and_huge_names_never_raise_and_every_metric_arrives_once(tmp_path, caplog):
    odd = {"x" * 10_000: 1.0, "ü" * 5_000: 2.0, "x" * 9_999 + "y": 3.0, "reward/🙂": 4.0, "a b\tc\n": 5.0,
           "": 6.0, "q?&=#%+ /..//": 7.0, "日本語/報酬": 8.0}
    many = {f"layer{i}/grad_norm": float(i) for i in range(1500)}
    run = start(tmp_path)
    with caplog.at_level(logging.WARNING, "rldk_track"):
        run.log({**odd, **many}, step=3)
        run.finish()
    stored = read_tb(tb_dir(run)).scalars
    renamed = {line["name"]: line["tag"] for line in map(json.loads, (tb_dir(run) / "rldk" / "renamed_tags.jsonl").read_text().splitlines())}
    assert set(renamed) == {"x" * 10_000, "ü" * 5_000, "x" * 9_999 + "y"}
    assert len(set(renamed.values())) == 3
    assert all(len(tag.encode()) <= MAX_TAG_BYTES for tag in renamed.values())
    assert len(stored) == len(odd) + len(many)
    for name, value in {**odd, **many}.items():
        assert stored[renamed.get(name, name)] == [(3, value, stored[renamed.get(name, name)][0][2])]
    assert len(tb_warnings(caplog, "longer than")) == 1


def test_names_that_are_not_valid_utf8_become_distinct_valid_tags(tmp_path):
    backend = TensorBoardBackend(RunInfo("r1", "direct", "rlhf", tmp_path, 1000.0))
    state = backend.open(None, Resume())
    backend.write([Metrics(0, 1000.0, 0, {"kl\ud800": 1.0, "kl\udc00": 2.0})])  # noqa: F601 (distinct strings; ruff reads lone surrogates as one)
    backend.close()
    stored = read_tb(Path(state["log_dir"])).scalars
    assert sorted(v for points in stored.values() for _, v, _ in points) == [1.0, 2.0]
    assert all(tag.startswith("kl\ufffd~") for tag in stored)


def test_a_name_with_a_lone_surrogate_through_run_log_reaches_tensorboard(tmp_path):
    run = start(tmp_path)
    run.log({"kl\ud800": 1.0}, step=0)
    assert run.finish(timeout=1).complete
    assert len(read_tb(tb_dir(run)).scalars) == 1


def test_a_metric_and_a_text_series_never_share_a_tag(tmp_path, caplog):
    run = start(tmp_path, config={"lr": 1e-5})
    with caplog.at_level(logging.WARNING, "rldk_track"):
        run.log({"config": 1.0, "run/status": 2.0, "_hparams_/session_end_info": 3.0}, step=0)
        run.finish()
    tb = read_tb(tb_dir(run))
    assert fenced_json(tb.last_text("config")) == {"lr": 1e-5}
    assert [v for _, v, _ in tb.scalars["config/metrics"]] == [1.0]
    assert [v for _, v, _ in tb.scalars["run/status"]] == [2.0]
    assert tb.last_text("run/status/text") == "success"
    assert [v for _, v, _ in tb.scalars["_hparams_/session_end_info/metrics"]] == [3.0]
    assert tb.status() == "STATUS_SUCCESS"
    assert len(tb_warnings(caplog, "is already the tag")) == 1


# -- run directories ---------------------------------------------------------------------------
def test_runs_sit_side_by_side_under_one_log_root(tmp_path):
    for name in ("ppo-lr1e-6", "ppo-lr3e-6"):
        run = start(tmp_path, name)
        run.log({"reward/mean": 1.0}, step=0)
        run.finish()
    root = tmp_path / "tensorboard"
    assert sorted(p.name for p in root.iterdir()) == ["ppo-lr1e-6", "ppo-lr3e-6"]
    assert all(read_tb(root / name).scalars["reward/mean"] for name in ("ppo-lr1e-6", "ppo-lr3e-6"))


def test_a_second_run_with_the_same_name_gets_a_dir_named_with_its_run_id(tmp_path):
    first = start(tmp_path, "same")
    first.log({"x": 1.0}, step=0)
    first.finish()
    second = start(tmp_path, "same")
    second.log({"x": 2.0}, step=0)
    second.finish()
    root = tmp_path / "tensorboard"
    assert sorted(p.name for p in root.iterdir()) == ["same", f"same-{second.id}"]
    assert [v for _, v, _ in read_tb(root / "same").scalars["x"]] == [1.0]
    assert [v for _, v, _ in read_tb(root / f"same-{second.id}").scalars["x"]] == [2.0]
    assert json.loads((root / "same" / "rldk" / "run.json").read_text())["run_id"] == first.id


def test_a_dir_written_by_another_tool_is_left_alone(tmp_path):
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    foreign = tmp_path / "tensorboard" / "baseline"
    EventFileWriter(str(foreign)).close()
    before = sorted(foreign.iterdir())
    run = start(tmp_path, "baseline")
    run.log({"x": 1.0}, step=0)
    run.finish()
    assert sorted(foreign.iterdir()) == before
    assert read_tb(tmp_path / "tensorboard" / f"baseline-{run.id}").scalars["x"]


def test_the_log_dir_option_sets_the_root(tmp_path):
    run = start(tmp_path, "rooted", tensorboard={"log_dir": str(tmp_path / "tb_root")})
    run.log({"x": 1.0}, step=0)
    run.finish()
    assert read_tb(tmp_path / "tb_root" / "rooted").scalars["x"]


def test_an_unknown_option_fails_fast_with_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="log_dir"):
        start(tmp_path, tensorboard={"logdir": str(tmp_path)})


# -- params, tags, summary, status -------------------------------------------------------------
def test_hparams_live_in_the_run_dir_itself_with_tensorboard_value_types(tmp_path):
    config = {"lr": 3e-6, "batch_size": 8, "use_peft": True, "model": {"name": "qwen", "layers": [1, 2]}, "ref": None}
    run = start(tmp_path, config=config)
    run.log({"reward/mean": 1.0}, step=0)
    run.finish()
    event_dirs = {p.parent for p in tb_dir(run).rglob("events.out.tfevents.*")}
    assert event_dirs == {tb_dir(run)}
    assert read_tb(tb_dir(run)).hparams() == {
        "lr": 3e-6, "batch_size": 8.0, "use_peft": True, "model/name": "qwen", "model/layers": "[1, 2]", "ref": "None",
    }


def test_the_config_text_holds_the_full_config_when_hparams_are_shortened(tmp_path):
    config = {"prompt_template": "p" * 1_000_000, "lr": 1e-5, "note": "```tricky```"}
    run = start(tmp_path, config=config)
    run.finish()
    tb = read_tb(tb_dir(run))
    assert len(tb.hparams()["prompt_template"]) == MAX_HPARAM_CHARS
    assert fenced_json(tb.last_text("config")) == config


def test_params_logged_later_reach_the_config_text_and_are_reported_once(tmp_path, caplog):
    run = start(tmp_path, config={"lr": 1e-5})
    with caplog.at_level(logging.WARNING, "rldk_track"):
        run.log_params({"trainer": {"beta": 0.1}})
        run.log_params({"trainer": {"epochs": 2}})
        run.finish()
    tb = read_tb(tb_dir(run))
    assert tb.hparams() == {"lr": 1e-5}
    assert fenced_json(tb.last_text("config")) == {"lr": 1e-5, "trainer": {"beta": 0.1, "epochs": 2}}
    assert len(tb_warnings(caplog, "config' text only")) == 1


def config_run(tmp_path: Path, calls: int) -> tuple[Path, int]:
    """A run that logs ``calls`` params records of one new key each (and as many tags); its run
    directory and the bytes of its event files."""
    run = start(tmp_path / str(calls), name="many", config={"lr": 1e-5})
    for i in range(calls):
        run.log_params({"sweep": {f"k{i:05d}": i}})
        run.set_tags({f"t{i:05d}": "x"})
    run.log({"x": 1.0}, step=0)
    assert run.finish().complete
    run_dir = tb_dir(run)
    return run_dir, sum(p.stat().st_size for p in run_dir.glob("events.out.tfevents.*"))


def test_many_params_and_tags_records_grow_the_event_file_linearly_and_read_back_exactly(tmp_path):
    small, (large_dir, large) = config_run(tmp_path, 300)[1], config_run(tmp_path, 1200)
    # 4x the records: about 4x the bytes (rewriting the whole config each time made it 16x)
    assert large < 6 * small
    logged = (large_dir / "rldk" / "config.jsonl").stat().st_size  # each record once, as logged
    assert large <= (REWRITE_FACTOR + 2) * logged + 2 * REWRITE_FREE_BYTES
    config = {"lr": 1e-5, "sweep": {f"k{i:05d}": i for i in range(1200)}}
    tb = read_tb(large_dir)  # the UI's texts: whole at the end
    assert fenced_json(tb.last_text("config")) == config
    assert tb.last_text("tags").count("| x |") == 1200
    ours = read_run_dir(large_dir)
    assert ours.params == {"lr": 1e-5, **{f"sweep/k{i:05d}": i for i in range(1200)}}
    assert ours.tags == {f"t{i:05d}": "x" for i in range(1200)}


def test_a_resumed_process_keeps_the_whole_config_and_tags_in_the_texts(tmp_path):
    info = RunInfo("r6", "resumed-config", "rlhf", tmp_path, 1000.0)
    first = TensorBoardBackend(info)
    first.open(None, Resume())
    state = first.write([Params(0, 1000.0, {"lr": 1e-5, "model": {"name": "qwen"}}), Tags(1, 1000.0, {"team": "rl"})])
    first.close()
    second = TensorBoardBackend(info)
    second.open(state, Resume(1))
    second.write([Params(2, 1001.0, {"model": {"size": 7}}), Tags(3, 1001.0, {"stage": "ppo"}), RunEnd(4, 1002.0, "success")])
    second.close()
    tb = read_tb(Path(state["log_dir"]))
    assert fenced_json(tb.last_text("config")) == {"lr": 1e-5, "model": {"name": "qwen", "size": 7}}
    assert "| team | rl |" in tb.last_text("tags") and "| stage | ppo |" in tb.last_text("tags")
    assert tb.hparams() == {"lr": 1e-5, "model/name": "qwen"}  # one session start, the first
    assert read_run_dir(Path(state["log_dir"])).params == {"lr": 1e-5, "model/name": "qwen", "model/size": 7}


def test_tags_are_one_text_table_since_tensorboard_has_no_tags(tmp_path):
    run = start(tmp_path, tags={"team": "rl"})
    run.set_tags({"stage": "ppo | v2"})
    run.finish()
    table = read_tb(tb_dir(run)).last_text("tags")
    assert "| team | rl |" in table and "| stage | ppo \\| v2 |" in table


def test_summary_numbers_are_scalars_and_other_values_text(tmp_path):
    run = start(tmp_path)
    run.log({"x": 1.0}, step=7)
    run.log_summary({"train_runtime": 12.5, "best": {"step": 7}, "verdict": "healthy"})
    run.finish()
    tb = read_tb(tb_dir(run))
    assert [v for _, v, _ in tb.scalars["summary/train_runtime"]] == [12.5]
    assert [v for _, v, _ in tb.scalars["summary/best/step"]] == [7.0]
    assert tb.last_text("summary/verdict") == "healthy"


@pytest.mark.parametrize(("status", "session_status"),
                         [("success", "STATUS_SUCCESS"), ("failed", "STATUS_FAILURE"), ("killed", "STATUS_FAILURE")])
def test_the_status_at_the_end_is_the_hparams_session_end_and_a_text(tmp_path, status, session_status):
    run = start(tmp_path)
    run.log({"x": 1.0}, step=0)
    run.finish(status)
    tb = read_tb(tb_dir(run))
    assert tb.status() == session_status
    assert tb.last_text("run/status") == status
    assert json.loads((tb_dir(run) / "rldk" / "run.json").read_text())["status"] == status


def test_a_run_without_params_is_still_an_hparams_session_with_its_status(tmp_path):
    run = start(tmp_path)
    run.log({"x": 1.0}, step=0)
    run.finish("failed")
    tb = read_tb(tb_dir(run))
    assert (tb.hparams(), tb.status()) == ({}, "STATUS_FAILURE")


# -- alerts, checkpoints, artifacts ------------------------------------------------------------
def test_alerts_are_text_series_by_rule_and_lines_in_the_alert_log(tmp_path):
    run = start(tmp_path)
    run.alert(rule="kl_spike", message="KL jumped | to 0.9", severity="critical", step=7, metric="kl/mean", value=0.9, threshold=0.3)
    run.alert(rule="entropy_collapse", message="entropy fell", step=8, metric="entropy/mean", value=0.01, threshold=0.1)
    run.alert(rule="kl_spike", message="again", severity="warning", step=9, metric="kl/mean", value=0.8, threshold=0.3)
    run.finish()
    tb = read_tb(tb_dir(run))
    kl = tb.texts["alerts/kl_spike"]
    assert [step for step, _, _ in kl] == [7, 9]
    assert all(word in kl[0][1] for word in ("critical", "KL jumped \\| to 0.9", "kl/mean", "0.9", "0.3"))
    assert [step for step, _, _ in tb.texts["alerts/entropy_collapse"]] == [8]
    lines = [json.loads(line) for line in (tb_dir(run) / "rldk" / "alerts.jsonl").read_text().splitlines()]
    assert [(a["rule"], a["step"], a["message"]) for a in lines] == [
        ("kl_spike", 7, "KL jumped | to 0.9"), ("entropy_collapse", 8, "entropy fell"), ("kl_spike", 9, "again")]


def test_checkpoint_health_is_a_text_and_a_health_file_but_no_scalar(tmp_path):
    run = start(tmp_path)
    run.emit(CheckpointHealth(-1, time.time(), step=100, path="/ckpt/step_100", score=0.42, issues=("NaN in layer 3",),
                              stats={"nan_count": 3, "dtype": "bf16"}, recommendations=("reload step 90",)))
    run.finish()
    tb = read_tb(tb_dir(run))
    assert tb.scalars == {}  # the checkpoint/* series are the analyzer's Metrics record
    assert [step for step, _, _ in tb.texts["checkpoint/health"]] == [100]
    text = tb.last_text("checkpoint/health")
    assert all(word in text for word in ("0.42", "NaN in layer 3", "bf16", "reload step 90"))
    health = json.loads((tb_dir(run) / "rldk" / "checkpoints" / "step_100" / "health.json").read_text())
    assert (health["score"], health["issues"], health["path"]) == (0.42, ["NaN in layer 3"], "/ckpt/step_100")


def test_artifacts_are_copied_under_the_run_dir(tmp_path):
    source = tmp_path / "samples"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "a.txt").write_text("A")
    run = start(tmp_path)
    run.log_artifact(b"# report", name="rldk/report.md")
    run.log_artifact(source)
    run.finish()
    artifacts = tb_dir(run) / "artifacts"
    assert (artifacts / "rldk" / "report.md").read_bytes() == b"# report"
    assert (artifacts / "samples" / "sub" / "a.txt").read_text() == "A"


# -- retries, sync, crash ----------------------------------------------------------------------
def test_a_batch_is_in_the_event_file_when_write_returns(tmp_path):
    backend = TensorBoardBackend(RunInfo("r4", "durable", "rlhf", tmp_path, 1000.0), {"flush_secs": 3600})
    state = backend.open(None, Resume())
    backend.write([Metrics(0, 1000.0, 0, {"x": 1.0}), Metrics(1, 1001.0, 1, {"x": 2.0})])
    assert [(s, v) for s, v, _ in read_tb(Path(state["log_dir"])).scalars["x"]] == [(0, 1.0), (1, 2.0)]
    backend.close()


def test_a_batch_written_again_after_a_failure_is_stored_once(tmp_path):
    backend = TensorBoardBackend(RunInfo("r2", "retry", "rlhf", tmp_path, 1000.0))
    state = backend.open(None, Resume())
    batch = [Metrics(seq, 1000.0 + seq, seq, {"x": float(seq)}) for seq in range(5)]
    backend.write(batch)
    backend.write(batch)
    backend.write([*batch, RunEnd(5, 1010.0, "success")])
    backend.close()
    assert [(s, v) for s, v, _ in read_tb(Path(state["log_dir"])).scalars["x"]] == [(s, float(s)) for s in range(5)]


def crashed_after_flush(tmp_path: Path) -> tuple[RunInfo, dict, list[Metrics]]:
    """A backend that wrote records 0-4 (the state its cursor kept), then 5-9 and half an event
    before the process died: in the file, but not in the cursor."""
    info = RunInfo("r5", "cut", "rlhf", tmp_path, 1000.0)
    records = [Metrics(seq, 1000.0 + seq, seq, {"x": float(seq)}) for seq in range(10)]
    first = TensorBoardBackend(info)
    first.open(None, Resume())
    state = first.write(records[:5])
    first.write(records[5:])
    first.close()  # adds no bytes: as if killed
    with open(Path(state["log_dir"]) / state["event_file"], "ab") as f:
        f.write(b"\x40\x00\x00\x00\x00")  # a torn event
    return info, state, records


def test_reopening_cuts_off_what_a_crashed_process_wrote_after_its_cursor(tmp_path):
    info, state, records = crashed_after_flush(tmp_path)
    second = TensorBoardBackend(info)
    second.open(state, Resume(4, lambda seq: iter(records[seq + 1:])))
    second.write([*records[5:], RunEnd(10, 1010.0, "killed")])  # the dispatcher resends after its cursor
    second.close()
    points = read_tb(Path(state["log_dir"]), purge=False).scalars["x"]
    assert [(s, v) for s, v, _ in points] == [(s, float(s)) for s in range(10)]


def test_reopening_also_empties_a_later_event_file_the_crashed_process_had_started(tmp_path):
    info = RunInfo("r7", "retry-file", "rlhf", tmp_path, 1000.0)
    records = [Metrics(seq, 1000.0 + seq, seq, {"x": float(seq)}) for seq in range(10)]
    first = TensorBoardBackend(info)
    first.open(None, Resume())
    state = first.write(records[:5])
    first._drop_writer()  # its writer broke (a full disk): the retry starts a second event file
    first.write(records[5:])
    first.close()  # and the process died before its cursor said so
    assert len(list(Path(state["log_dir"]).glob("events.out.tfevents.*"))) == 2
    second = TensorBoardBackend(info)
    second.open(state, Resume(4, lambda seq: iter(records[seq + 1:])))
    second.write(records[5:])
    second.close()
    assert [s for s, _, _ in read_tb(Path(state["log_dir"]), purge=False).scalars["x"]] == list(range(10))


def test_records_the_cursor_counts_but_the_cut_removed_are_written_again(tmp_path):
    info, state, records = crashed_after_flush(tmp_path)
    second = TensorBoardBackend(info)
    second.open(state, Resume(7, lambda seq: iter(records[seq + 1:])))  # the cursor is past the state's record 4
    second.write(records[8:])
    second.close()
    assert [s for s, _, _ in read_tb(Path(state["log_dir"]), purge=False).scalars["x"]] == list(range(10))


def frame_cuts(path: Path) -> list[int]:
    """Sizes to cut an event file to, as an OS crash that lost part of its tail leaves it: empty,
    inside the header, at each event boundary and inside each event (its length, CRC and data)."""
    cuts = {0, 5}
    for begin, end, _ in _whole_events(path):
        cuts |= {end, begin + 7, begin + 13, (begin + end) // 2, end - 1}
    return sorted(c for c in cuts if c < path.stat().st_size)


def test_an_event_file_that_lost_its_tail_is_cut_after_its_last_whole_record_and_the_rest_written_again(tmp_path, caplog):
    info = RunInfo("r8", "os-crash", "rlhf", tmp_path, 1000.0)
    records = [Params(0, 1000.0, {"lr": 1e-5, "model": {"name": "m"}}),  # two events: session start + config
               *[Metrics(seq, 1000.0 + seq, seq - 1, {"x": float(seq), "y": -float(seq)}) for seq in range(1, 12)],
               Tags(12, 1012.0, {"team": "rl"}),
               *[Metrics(seq, 1000.0 + seq, seq - 2, {"x": float(seq), "y": -float(seq)}) for seq in range(13, 20)]]
    first = TensorBoardBackend(info)
    first.open(None, Resume())
    for begin in range(0, len(records), 4):  # batches, as the dispatcher sends them
        state = first.write(records[begin:begin + 4])
    first.close()
    log_dir = Path(state["log_dir"])
    # the crashed process's file is from an earlier second: each reopening's new file sorts after it at once
    crashed = log_dir / state["event_file"]
    older = crashed.with_name(f"events.out.tfevents.{int(time.time()) - 100}.{crashed.name.split('.', 4)[4]}")
    crashed.rename(older)
    state = {**state, "event_file": older.name}
    whole = older.read_bytes()
    assert state["event_bytes"] == len(whole) and (state["event_seq"], state["event_start_seq"]) == (19, -1)
    expected_x = [(r.step, r.values["x"]) for r in records if isinstance(r, Metrics)]

    cuts = frame_cuts(older)
    assert len(cuts) > 60
    for cut in cuts:
        for path in log_dir.glob("events.out.tfevents.*"):
            path.unlink()
        older.write_bytes(whole[:cut])  # what reached the disk before the OS crash
        (log_dir / "rldk" / "config.jsonl").write_text("")  # it lost its lines too
        second = TensorBoardBackend(info)
        second.open(state, Resume(19, lambda seq: iter(records[seq + 1:])))  # the cursor said: all delivered
        second.write([RunEnd(20, 1020.0, "killed")])
        second.close()
        tb = read_tb(log_dir, purge=False)
        assert [(s, v) for s, v, _ in tb.scalars["x"]] == expected_x, cut
        assert [(s, -v) for s, v, _ in tb.scalars["y"]] == expected_x, cut
        assert (tb.hparams(), tb.status()) == ({"lr": 1e-5, "model/name": "m"}, "STATUS_FAILURE"), cut
        assert "rl" in tb.last_text("tags"), cut
        lines = [json.loads(line) for line in (log_dir / "rldk" / "config.jsonl").read_text().splitlines()]
        assert sorted(line["seq"] for line in lines) == [0, 12], cut  # each once, whether cut or kept
    assert tb_warnings(caplog, "lost its last")


OS_CRASH_CHILD = textwrap.dedent("""
    import os, signal, sys
    import rldk_track

    run = rldk_track.init(backend=["tensorboard"], dir=sys.argv[1], run_name="os-crash", config={"lr": 1e-5})
    for step in range(300):
        run.log({"x": float(step), "y": step / 3}, step=step)
        if step == 150:
            run.set_tags({"phase": "two"})
    assert run.flush(timeout=120).complete  # in the event file and in its cursor
    os.kill(os.getpid(), signal.SIGKILL)  # the machine goes down with it
""")


def test_sync_after_an_os_crash_that_cut_the_event_file_mid_event_shows_every_point_once(tmp_path):
    child = subprocess.run([sys.executable, "-c", OS_CRASH_CHILD, str(tmp_path)], capture_output=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    (cursor,) = (tmp_path / "events").glob("*.tensorboard.cursor.json")
    state = json.loads(cursor.read_text())["state"]
    event_file = Path(state["log_dir"]) / state["event_file"]
    assert event_file.stat().st_size == state["event_bytes"]
    # the page cache lost the file's last third, and the cut lands inside an event
    begin, end, _ = next(e for e in _whole_events(event_file) if e[1] > state["event_bytes"] * 2 // 3)
    os.truncate(event_file, begin + (end - begin) // 2)

    assert cli(["sync", str(tmp_path), "--to", "tensorboard"]) == 0
    tb = read_tb(Path(state["log_dir"]), purge=False)
    assert [(s, v) for s, v, _ in tb.scalars["x"]] == [(s, float(s)) for s in range(300)]
    assert [s for s, _, _ in tb.scalars["y"]] == list(range(300))
    assert (tb.hparams(), tb.status(), tb.last_text("run/status")) == ({"lr": 1e-5}, "STATUS_FAILURE", "killed")
    assert "two" in tb.last_text("tags")
    assert read_tb(Path(state["log_dir"])).scalars["x"] == tb.scalars["x"]  # the UI's view: the same points


def test_a_resumed_run_adds_an_event_file_that_tensorboard_reads_after_the_earlier_ones(tmp_path):
    info = RunInfo("r3", "resumed", "rlhf", tmp_path, 1000.0)
    first = TensorBoardBackend(info)
    state = first.open(None, Resume())
    first.write([Metrics(0, 1000.0, 0, {"x": 0.0})])
    first.close()
    (earlier,) = Path(state["log_dir"]).glob("events.out.tfevents.*")
    # as if the crashed process had started its file in the coming second on another host
    earlier.rename(earlier.with_name(f"events.out.tfevents.{int(time.time()) + 1:010d}.zz-host.1.0"))
    second = TensorBoardBackend(info)
    assert second.open(state, Resume())["log_dir"] == state["log_dir"]
    second.write([Metrics(1, 1001.0, 1, {"x": 1.0})])
    second.close()
    assert [s for s, _, _ in read_tb(Path(state["log_dir"])).scalars["x"]] == [0, 1]


def test_sync_replays_a_jsonl_only_run_and_a_second_sync_adds_nothing(tmp_path):
    run = rldk_track.init(dir=tmp_path, run_name="offline", config={"lr": 1e-5})
    for step in range(30):
        run.log({"reward/mean": step / 10, "kl/mean": 0.01}, step=step)
    run.alert(rule="kl_spike", message="high", step=12, metric="kl/mean", value=0.5, threshold=0.1)
    run.finish()
    assert not (tmp_path / "tensorboard").exists()

    assert cli(["sync", str(tmp_path), "--to", "tensorboard"]) == 0
    run_dir = tmp_path / "tensorboard" / "offline"
    tb = read_tb(run_dir)
    logged = logged_metrics(tmp_path)
    assert tb.scalars["reward/mean"] == [(m.step, f32(m.values["reward/mean"]), m.wall_time) for m in logged]
    assert (tb.hparams(), tb.status(), len(tb.texts["alerts/kl_spike"])) == ({"lr": 1e-5}, "STATUS_SUCCESS", 1)
    files = {p: p.stat().st_size for p in run_dir.rglob("*") if p.is_file()}

    assert cli(["sync", str(tmp_path), "--to", "tensorboard"]) == 0
    assert {p: p.stat().st_size for p in run_dir.rglob("*") if p.is_file()} == files
    assert sorted(p.name for p in (tmp_path / "tensorboard").iterdir()) == ["offline"]


CRASHING_CHILD = textwrap.dedent("""
    import os, signal, sys, time
    import rldk_track
    from rldk_track.backends.tensorboard import TensorBoardBackend

    write = TensorBoardBackend.write
    def held_back(self, records):  # TensorBoard falls behind from step 50 on
        if any(getattr(r, "step", 0) >= 50 for r in records):
            time.sleep(60)
        write(self, records)
    TensorBoardBackend.write = held_back

    run = rldk_track.init(backend=["tensorboard"], dir=sys.argv[1], run_name="crashy", config={"lr": 1e-5})
    for step in range(50):
        run.log({"x": float(step)}, step=step)
    assert run.flush(timeout=30).complete
    for step in range(50, 100):
        run.log({"x": float(step)}, step=step)
    time.sleep(0.5)  # in the event log, not in TensorBoard
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_sync_completes_a_killed_run_in_the_same_dir_without_duplicates(tmp_path):
    child = subprocess.run([sys.executable, "-c", CRASHING_CHILD, str(tmp_path)], capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    run_dir = tmp_path / "tensorboard" / "crashy"
    assert [s for s, _, _ in read_tb(run_dir).scalars["x"]] == list(range(50))

    assert cli(["sync", str(tmp_path), "--to", "tensorboard"]) == 0
    assert sorted(p.name for p in (tmp_path / "tensorboard").iterdir()) == ["crashy"]
    tb = read_tb(run_dir)
    assert [(s, v) for s, v, _ in tb.scalars["x"]] == [(s, float(s)) for s in range(100)]
    assert (tb.status(), tb.last_text("run/status"), len(tb.event_files)) == ("STATUS_FAILURE", "killed", 2)
    assert tb.hparams() == {"lr": 1e-5}


def test_importing_the_backend_does_not_import_tensorboard():
    code = "import sys, rldk_track.backends.tensorboard; print('tensorboard' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**os.environ})
    assert out.stdout.strip() == "False", out.stderr


# -- the real server ---------------------------------------------------------------------------
def test_the_tensorboard_server_lists_the_run_its_tags_and_its_hparams(tensorboard_server):
    run = rldk_track.init(backend=["tensorboard"], dir=tensorboard_server.logdir.parent, run_name="served",
                          config={"lr": 1e-5, "model": "qwen"})
    for step in range(5):
        run.log({"reward/mean": float(step), "kl/mean": 0.5}, step=step)
    run.alert(rule="kl_spike", message="high", step=4, metric="kl/mean", value=0.5, threshold=0.1)
    assert run.finish().complete

    tensorboard_server.wait_for_run("served")
    assert tensorboard_server.get_json("/data/runs") == ["served"]
    assert set(tensorboard_server.get_json("/data/plugin/scalars/tags")["served"]) == {"reward/mean", "kl/mean"}
    points = tensorboard_server.get_json("/data/plugin/scalars/scalars", run="served", tag="reward/mean")
    assert [(step, value) for _, step, value in points] == [(s, float(s)) for s in range(5)]
    assert {"config", "alerts/kl_spike", "run/status"} <= set(tensorboard_server.get_json("/data/plugin/text/tags")["served"])
    experiment = tensorboard_server.post_json("/data/plugin/hparams/experiment", {"experimentName": ""})
    assert {h["name"] for h in experiment["hparamInfos"]} == {"lr", "model"}
    groups = tensorboard_server.post_json("/data/plugin/hparams/session_groups", {
        "experimentName": "", "allowedStatuses": ["STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING", "STATUS_UNKNOWN"],
        "colParams": [], "startIndex": 0, "sliceSize": 10})
    (group,) = groups["sessionGroups"]
    assert [(s["name"], s["status"]) for s in group["sessions"]] == [("served", "STATUS_SUCCESS")]
