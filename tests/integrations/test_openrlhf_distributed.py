"""A real 2-process ``torch.distributed`` (gloo) SFT run under the launcher with ``--per-rank``:
every rank is patched by the launcher's sitecustomize, each writes its own event log with its
rank and host, rank 0 alone reaches the tracker run, and ``rldk-track merge`` lines the ranks up
(per-rank min/mean/max, and which rank holds the most memory)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
import pytest

from rldk_testsupport import openrlhf_minimal as om

from rldk_track.eventlog import read_records
from rldk_track.merge import rank_spread, read_ranks
from rldk_track.records import Metrics, RunEnd, RunStart

pytestmark = pytest.mark.timeout(300)

SCRIPT = Path(__file__).with_name("openrlhf_sft_ranks.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory: pytest.TempPathFactory, openrlhf_installed: None) -> Path:
    """Runs the job once; the run directory."""
    root = tmp_path_factory.mktemp("sft_ranks")
    model = om.save_tiny_causal_lm(root / "model")
    command = [
        sys.executable, "-m", "rldk_track.cli", "openrlhf", "--per-rank", "--no-analyzers",
        "--dir", str(root / "runs"), "--run-id", "sft-2ranks",
        "--", sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(SCRIPT), str(model),
    ]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=root, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return root / "runs"


def test_each_rank_writes_its_own_event_log_with_rank_and_host(two_rank_run: Path) -> None:
    logs = sorted(p.name for p in (two_rank_run / "events").glob("*.jsonl"))
    assert logs == ["sft-2ranks.jsonl", "sft-2ranks.rank1.jsonl"]
    for name, rank in (("sft-2ranks.jsonl", 0), ("sft-2ranks.rank1.jsonl", 1)):
        recs = [r for _, r in read_records(two_rank_run / "events" / name)]
        [start] = [r for r in recs if isinstance(r, RunStart)]
        assert (start.run_id, start.rank, start.world_size, start.host) == ("sft-2ranks", rank, 2, socket.gethostname())
        assert sorted(r.step for r in recs if isinstance(r, Metrics) and "gpt_loss" in r.values) == [1, 2, 3, 4]
        assert [r.status for r in recs if isinstance(r, RunEnd)] == ["success"]


def test_merge_gives_per_rank_spread_and_finds_the_memory_heavy_rank(two_rank_run: Path) -> None:
    frame = read_ranks(two_rank_run, "sft-2ranks")
    spread = rank_spread(frame)
    loss = spread[spread["metric"] == "gpt_loss"]
    assert list(loss["step"]) == [1, 2, 3, 4] and (loss["ranks"] == 2).all()
    assert (loss["spread"].abs() < 1e-6).all()  # all-reduced by OpenRLHF before logging: equal on every rank
    rss = spread[spread["metric"] == "system/peak_proc_rss_gb"]
    assert (rss["max_rank"] == 1).all() and (rss["spread"] > 0.25).all()  # rank 1's 300 MB ballast

    out = subprocess.run([sys.executable, "-m", "rldk_track.cli", "merge", str(two_rank_run), "--json",
                          "--out", str(two_rank_run / "spread.csv")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    summary = {row["metric"]: row for row in json.loads(out.stdout)}
    assert summary["system/peak_proc_rss_gb"]["highest_rank"] == 1
    assert summary["gpt_loss"]["highest_rank"] == -1  # every rank always equal
    assert (two_rank_run / "spread.csv").read_text().startswith("run_id,step,metric,ranks,min,mean,max")
