"""Sample rows as records: ``run.log_samples`` takes rows as a loop has them, the log thread bounds
them, the event log keeps them and ``load_runs`` returns them; bad input is recorded or reported
once and never raised into training."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
import pytest

import rldk_track
from rldk_track.eventlog import read_records
from rldk_track.readers import load_runs
from rldk_track.records import Samples, from_json, to_json
from rldk_track.samples import TRUNCATION_MARK, SampleBounder, SampleLimits


def samples_of(run):
    return [r for _, r in read_records(run.dir / "events" / f"{run.id}.jsonl") if isinstance(r, Samples)]


def test_samples_json_form_round_trips():
    record = Samples(4, 12.5, 3, ("prompt", "reward"), (("a", 1.0), ("b", None)), "completions", ("a note",))
    line = to_json(record, "run")
    assert line == {"schema_version": 1, "kind": "samples", "seq": 4, "wall_time": 12.5, "step": 3,
                    "columns": ["prompt", "reward"], "rows": [["a", 1.0], ["b", None]], "name": "completions",
                    "notes": ["a note"]}
    assert from_json(line) == record


def test_rows_dicts_columns_and_dataframes_read_back_as_the_same_rows(tmp_path):
    run = rldk_track.init(dir=tmp_path, run_name="s")
    rows = [{"prompt": "2+2?", "completion": "4", "reward": 1.0}, {"prompt": "3+3?", "completion": "7", "reward": 0.0}]
    run.log_samples(rows, step=0, name="completions")
    run.log_samples({"prompt": ["2+2?", "3+3?"], "completion": ["4", "7"], "reward": [1.0, 0.0]}, step=1, name="completions")
    run.log_samples(pd.DataFrame(rows), step=2, name="completions")
    rows[0]["completion"] = "changed after logging"
    assert run.finish().complete
    for record in samples_of(run):
        assert record.columns == ("prompt", "completion", "reward")
        assert record.as_dicts() == [{"prompt": "2+2?", "completion": "4", "reward": 1.0},
                                     {"prompt": "3+3?", "completion": "7", "reward": 0.0}]
    frame = load_runs(tmp_path).samples
    assert list(frame.columns) == ["run", "step", "name", "row", "prompt", "completion", "reward"]
    assert frame["step"].tolist() == [0, 0, 1, 1, 2, 2]
    assert frame["completion"].tolist() == ["4", "7"] * 3


def test_a_megabyte_completion_is_cut_with_a_note_and_reported_once(tmp_path, caplog):
    run = rldk_track.init(dir=tmp_path)
    with caplog.at_level(logging.WARNING, "rldk_track"):
        for step in range(3):
            run.log_samples([{"completion": "x" * 1_000_000}], step=step)
        run.finish()
    cells = [r.rows[0][0] for r in samples_of(run)]
    assert len(cells) == 3
    assert all(c == "x" * 4000 + TRUNCATION_MARK.format(total=1_000_000) for c in cells)
    assert all(any("max_cell_chars" in n for n in r.notes) for r in samples_of(run))
    assert sum("longer than 4000" in m for m in caplog.messages) == 1


def test_bad_cells_are_recorded_as_text_and_reported_once(tmp_path, caplog):
    run = rldk_track.init(dir=tmp_path)
    with caplog.at_level(logging.WARNING, "rldk_track"):
        run.log_samples([
            {"prompt": b"\xff\xfeok", "completion": "a\ud800b", "reward": None},
            {"prompt": "p", "completion": "c", "reward": np.float32(0.5)},
        ], step=0)
        run.log_samples(42, step=1)
        run.finish()
    (record,) = samples_of(run)
    assert record.as_dicts() == [{"prompt": "\ufffd\ufffdok", "completion": "a\ufffdb", "reward": None},
                                 {"prompt": "p", "completion": "c", "reward": 0.5}]
    assert any("non-UTF-8" in m for m in caplog.messages)
    assert any("lone surrogates" in m for m in caplog.messages)
    assert sum("not int" in m for m in caplog.messages) == 1


def test_a_dataframe_of_odd_dtypes_is_recorded():
    frame = pd.DataFrame({
        "category": pd.Categorical(["a", "b"]),
        "time": pd.to_datetime(["2020-01-01", None]),
        "nullable": pd.array([1, None], dtype="Int64"),
        "object": [np.zeros(3), [{"role": "user", "content": "hi"}]],
        "nan": [math.nan, 1.5],
    })
    bounded = SampleBounder().bound(Samples(-1, 0.0, 0, (), (), raw=frame))
    assert bounded.as_dicts() == [
        {"category": "a", "time": "2020-01-01 00:00:00", "nullable": 1, "object": "[0. 0. 0.]", "nan": bounded.rows[0][4]},
        {"category": "b", "time": None, "nullable": None, "object": '[{"role": "user", "content": "hi"}]', "nan": 1.5},
    ]
    assert math.isnan(bounded.rows[0][4])
    assert any("ndarray" in n for n in bounded.notes)


def test_rows_past_the_limit_are_counted_in_a_note():
    bounder = SampleBounder(SampleLimits(max_rows=2))
    bounded = bounder.bound(Samples(-1, 0.0, 0, (), (), raw=[{"i": i} for i in range(5)]))
    assert bounded.rows == ((0,), (1,))
    assert bounded.notes == ("kept the first 2 of 5 rows (SampleLimits.max_rows)",)


def test_every_n_steps_records_only_those_steps(tmp_path):
    run = rldk_track.init(dir=tmp_path, samples=SampleLimits(every=5))
    for step in range(12):
        run.log({"reward": 1.0}, step=step)
        run.log_samples([{"step_seen": step}])
    run.finish()
    assert [r.step for r in samples_of(run)] == [0, 5, 10]


def test_limits_refuse_nonsense():
    with pytest.raises(ValueError, match="max_rows"):
        SampleLimits(max_rows=0)


def test_cli_prints_the_last_step_highest_reward_first(tmp_path, capsys):
    from rldk_track.cli import main

    run = rldk_track.init(dir=tmp_path, run_name="cli")
    for step in range(3):
        run.log_samples([{"completion": f"c{step}-{i}", "reward": i / 3} for i in range(4)], step=step, name="completions")
    run.finish()
    assert main(["samples", str(tmp_path), "--sort", "reward", "--limit", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.index("c2-3") < out.index("c2-2") and "c2-1" not in out and "c1-" not in out
    assert main(["samples", str(tmp_path), "--step", "0", "--json", "--no-progress"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["completion"] for r in rows] == [f"c0-{i}" for i in range(4)]


def test_cli_text_shows_float32_rewards_to_6_digits_and_json_keeps_them_exact(tmp_path, capsys):
    from rldk_track.cli import main
    from rldk_track.cli.samples import shown

    run = rldk_track.init(dir=tmp_path, run_name="f32")
    run.log_samples(pd.DataFrame({"completion": ["long", "short"], "reward": np.array([17.9, 0.1], dtype=np.float32),
                                  "tokens": [180, 3], "ratio": [1 / 3, 1e-7]}), step=1)
    run.finish()
    assert main(["samples", str(tmp_path), "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  reward: 17.9" in lines and "  reward: 0.1" in lines
    assert "  ratio: 0.333333" in lines and "  ratio: 1e-07" in lines and "  tokens: 180" in lines
    assert main(["samples", str(tmp_path), "--json", "--no-progress"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["reward"] for r in rows] == [float(np.float32(17.9)), float(np.float32(0.1))]  # 17.899999618530273
    assert (shown(np.float32(17.9)), shown(True), shown(7), shown("x")) == ("17.9", "True", "7", "x")
