"""Two processes given one run id: the first holds the run's lock, the second fails at ``init``
naming it, ``sync`` skips the live run, and a run resumed after a crash gets the lock (issue 12,
item 5). Every process here is a real one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rldk_track.eventlog import read_records
from rldk_track.records import Metrics, RunEnd, RunStart
from rldk_track.sync import sync
from rldk_testsupport.live_run import LiveRun

SECOND = """
import os, sys
import rldk_track

run = rldk_track.init(backend=["tensorboard"], dir=sys.argv[1], project="two", run_id=os.environ.get("ID"))
run.log({"x": -1.0}, step=0)
run.finish()
"""


def start_holder(tmp_path: Path) -> LiveRun:
    return LiveRun(tmp_path, "two", "tworun", 0, 10, 20)


def records(tmp_path: Path) -> list:
    return [r for _, r in read_records(tmp_path / "events" / "tworun.jsonl")]


@pytest.mark.parametrize("given", ["run_id", "RLDK_RUN_ID"])
def test_a_second_process_given_the_same_run_id_fails_fast_naming_the_holder(tmp_path: Path, given: str) -> None:
    holder = start_holder(tmp_path)
    try:
        env = {**os.environ, **({"ID": "tworun"} if given == "run_id" else {"RLDK_RUN_ID": "tworun"})}
        second = subprocess.run([sys.executable, "-c", SECOND, str(tmp_path)], env=env, capture_output=True,
                                text=True, timeout=300)
        assert second.returncode != 0
        assert "RunLocked" in second.stderr
        assert f"pid {holder.pid} on host {socket.gethostname()}" in second.stderr
    finally:
        holder.let_finish()
    logged = records(tmp_path)
    seqs = [r.seq for r in logged]
    assert seqs == list(range(len(logged)))  # one writer: no duplicate or missing seq
    assert sum(isinstance(r, RunStart) for r in logged) == 1
    assert [r.step for r in logged if isinstance(r, Metrics)] == list(range(20))  # nothing from the second
    assert [r.status for r in logged if isinstance(r, RunEnd)] == ["success"]


def test_sync_skips_a_live_run_and_says_who_holds_it(tmp_path: Path) -> None:
    holder = start_holder(tmp_path)
    try:
        (result,) = sync(tmp_path)
        assert not result.complete and result.delivered == 0
        assert f"live: recorded by pid {holder.pid} on host {socket.gethostname()}" in result.skipped
        assert not any(isinstance(r, RunEnd) for r in records(tmp_path))  # no run_end(killed) for a live run
    finally:
        holder.let_finish()
    (after,) = sync(tmp_path)
    assert after.complete and after.skipped == "already up to date"
    assert [r.status for r in records(tmp_path) if isinstance(r, RunEnd)] == ["success"]


CRASHER = """
import os, signal, sys, time
import rldk_track

run = rldk_track.init(backend=["tensorboard"], dir=sys.argv[1], project="two", run_id="tworun")
for step in range(10):
    run.log({"x": float(step)}, step=step)
run.flush()
child = os.fork()  # a DataLoader-like worker that outlives its parent
if child == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1), os.dup2(null, 2)  # let the test read its parent's output to the end
    time.sleep(600)
    os._exit(0)
print(child, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

RESUMER = """
import sys
import rldk_track

run = rldk_track.init(backend=["tensorboard"], dir=sys.argv[1], project="two", run_id="tworun")
for step in range(10, 20):
    run.log({"x": float(step)}, step=step)
run.finish()
"""


def test_a_run_resumed_after_a_crash_gets_the_lock_even_while_a_forked_child_lives(tmp_path: Path) -> None:
    crashed = subprocess.run([sys.executable, "-c", CRASHER, str(tmp_path)], capture_output=True, text=True,
                             timeout=300)
    assert crashed.returncode == -signal.SIGKILL
    orphan = int(crashed.stdout.split()[0])
    try:
        resumed = subprocess.run([sys.executable, "-c", RESUMER, str(tmp_path)], capture_output=True, text=True,
                                 timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
    finally:
        os.kill(orphan, signal.SIGKILL)
    logged = records(tmp_path)
    assert [r.seq for r in logged] == list(range(len(logged)))
    assert [r.step for r in logged if isinstance(r, Metrics)] == list(range(20))
    assert [r.status for r in logged if isinstance(r, RunEnd)] == ["success"]


def test_a_finished_run_can_be_resumed_in_the_same_process(tmp_path: Path) -> None:
    import rldk_track

    first = rldk_track.init(dir=tmp_path, run_id="tworun")
    first.log({"x": 0.0}, step=0)
    assert first.finish().complete
    again = rldk_track.init(dir=tmp_path, run_id="tworun")
    again.log({"x": 1.0}, step=1)
    assert again.finish().complete
    assert [r.step for r in records(tmp_path) if isinstance(r, Metrics)] == [0, 1]


def test_a_second_init_in_the_same_process_fails_while_the_first_is_live(tmp_path: Path) -> None:
    import rldk_track
    from rldk_track.runlock import RunLocked

    first = rldk_track.init(dir=tmp_path, run_id="tworun")
    with pytest.raises(RunLocked, match=f"pid {os.getpid()} on host"):
        rldk_track.init(dir=tmp_path, run_id="tworun")
    assert first.finish().complete

