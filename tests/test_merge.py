"""``rldk_track.merge`` and ``rldk-track merge``: per-rank event logs written by real runs
(``init(per_rank=True)`` on ranks given by the launcher's environment) lined up per step and
metric, with min/mean/max against a numpy reference, the straggler and the memory-heavy rank."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rldk_track
from rldk_track.merge import rank_logs, rank_spread, rank_summary, read_ranks

#: step seconds per rank: rank 2 is the straggler on every step but the first.
STEP_S = {0: [1.0, 1.0, 1.1, 1.0], 1: [1.0, 1.1, 1.0, 1.0], 2: [1.0, 1.9, 2.1, 2.0]}
MEM_GB = {0: 10.0, 1: 14.0, 2: 11.0}


@pytest.fixture
def three_rank_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WORLD_SIZE", "3")
    for rank in (0, 1, 2):
        monkeypatch.setenv("RANK", str(rank))
        with rldk_track.init(dir=tmp_path, run_id="job", per_rank=True) as run:
            for step, seconds in enumerate(STEP_S[rank], start=1):
                run.log({"perf/step_s": seconds, "system/peak_proc_rss_gb": MEM_GB[rank] + step,
                         "loss": 2.0 / step}, step=step)
    monkeypatch.setenv("RANK", "0")
    with rldk_track.init(dir=tmp_path, run_id="single") as run:  # another run, one rank only
        run.log({"loss": 1.0}, step=1)
    return tmp_path


def test_rank_logs_are_grouped_by_run_with_rank_and_host(three_rank_run: Path) -> None:
    runs = rank_logs(three_rank_run)
    assert sorted(runs) == ["job", "single"]
    assert [(log.rank, log.world_size, log.host) for log in runs["job"]] == [
        (0, 3, socket.gethostname()), (1, 3, socket.gethostname()), (2, 3, socket.gethostname())]
    assert [log.path.name for log in runs["job"]] == ["job.jsonl", "job.rank1.jsonl", "job.rank2.jsonl"]


def test_spread_is_min_mean_max_over_ranks_per_step(three_rank_run: Path) -> None:
    spread = rank_spread(read_ranks(three_rank_run, "job"))
    step_s = spread[spread["metric"] == "perf/step_s"].set_index("step")
    table = np.array([STEP_S[r] for r in (0, 1, 2)])
    np.testing.assert_allclose(step_s["min"], table.min(axis=0))
    np.testing.assert_allclose(step_s["mean"], table.mean(axis=0))
    np.testing.assert_allclose(step_s["max"], table.max(axis=0))
    assert list(step_s["ranks"]) == [3, 3, 3, 3]
    assert list(step_s.loc[[2, 3, 4], "max_rank"]) == [2, 2, 2]


def test_summary_names_the_straggler_and_the_memory_heavy_rank(three_rank_run: Path) -> None:
    summary = rank_summary(rank_spread(read_ranks(three_rank_run, "job"))).set_index("metric")
    assert summary.loc["perf/step_s", "highest_rank"] == 2
    assert summary.loc["perf/step_s", "highest_share"] == 1.0  # of the 3 uneven steps
    assert summary.loc["perf/step_s", "worst_step"] == 3
    assert summary.loc["system/peak_proc_rss_gb", "highest_rank"] == 1
    assert summary.loc["loss", "highest_rank"] == -1  # identical on every rank
    assert list(summary.index[:2]) == ["perf/step_s", "system/peak_proc_rss_gb"]  # most uneven first


def test_metrics_filter_keeps_only_those_metrics(three_rank_run: Path) -> None:
    frame = read_ranks(three_rank_run, metrics=["loss"])
    assert set(frame["metric"]) == {"loss"} and set(frame["run_id"]) == {"job", "single"}


def test_merge_command_prints_each_multi_rank_run(three_rank_run: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "rldk_track.cli", "merge", str(three_rank_run)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "run job: ranks 0, 1, 2" in out.stdout and "run single" not in out.stdout
    straggler = next(line for line in out.stdout.splitlines() if line.strip().startswith("perf/step_s"))
    assert "rank 2 (100% of steps)" in straggler

    as_json = subprocess.run([sys.executable, "-m", "rldk_track.cli", "merge", str(three_rank_run), "--json",
                              "--metric", "loss"], capture_output=True, text=True, timeout=120)
    assert [row["metric"] for row in json.loads(as_json.stdout)] == ["loss"]


def test_merge_command_without_per_rank_logs_says_how_to_get_them(tmp_path: Path) -> None:
    with rldk_track.init(dir=tmp_path, run_id="solo") as run:
        run.log({"loss": 1.0}, step=1)
    out = subprocess.run([sys.executable, "-m", "rldk_track.cli", "merge", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "per_rank=True" in out.stdout
