"""Repeated SIGKILL + ``rldk-track sync`` (issue 12 item 4): one run resumed and killed ten times,
each time at another point, each time completed by sync. Counted with TensorBoard's own
``EventAccumulator`` (every event kept, nothing purged), with TensorBoard's view (purging as its
UI does) and with our reader: every point once, none missing, and each attempt ended as
``killed``. And a run resumed after it had ended, then killed, is ended as ``killed`` by sync
(the MLflow run too).

The kill points are deterministic where they can be: the child kills itself in place of its
TensorBoard cursor update (the batch is in the event file, the cursor does not say so), or right
after handing the N-th event to TensorBoard's writer (mid-batch: part of it written, maybe a torn
event); one kind of cycle is killed by the parent once it sees N points in the event files.
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from rldk_track.cli import main as cli
from rldk_track.eventlog import read_cursor, read_records
from rldk_track.readers.tensorboard import read_run_dir
from rldk_track.records import Metrics, RunEnd

STEPS = 400  # per cycle, 3 metrics each
METRICS = ("a", "b", "c")

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    import rldk_track
    from rldk_track import dispatch
    from rldk_track.backends.tensorboard import TensorBoardBackend

    run_dir, cycle, steps, mode, at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    count = 0
    if mode == "cursor":  # die in place of TensorBoard's at-th cursor update: the batch is in its file
        write_cursor = dispatch.write_cursor
        def dying_write_cursor(path, seq, state):
            global count
            if path.name.endswith(".tensorboard.cursor.json"):
                count += 1
                if count == at:
                    os.kill(os.getpid(), signal.SIGKILL)
            write_cursor(path, seq, state)
        dispatch.write_cursor = dying_write_cursor
    elif mode == "event":  # die right after the at-th event went to TensorBoard's writer
        emit = TensorBoardBackend._emit
        def dying_emit(self, *args):
            global count
            emit(self, *args)
            count += 1
            if count == at:
                os.kill(os.getpid(), signal.SIGKILL)
        TensorBoardBackend._emit = dying_emit

    run = rldk_track.init(backend=["tensorboard"], dir=run_dir, run_id="loop", run_name="loop",
                          config={"lr": 1e-5, "cycle": {str(cycle): cycle}})
    run.set_tags({f"attempt{cycle}": "yes"})
    for i in range(steps):
        step = cycle * steps + i
        run.log({"a": float(step), "b": step / 2, "c": 1.0}, step=step)
        if i % 50 == 49:
            time.sleep(0.02)  # several batches per attempt
    run.flush(timeout=120)
    print("flushed", flush=True)
    if mode == "parent":
        time.sleep(600)
    os.kill(os.getpid(), signal.SIGKILL)
""")

#: (mode, at) per cycle: the cursor update that never happens, the event after which the process
#: dies, or the number of new points after which the parent kills it
CYCLES = [("cursor", 1), ("event", 150), ("parent", 300), ("cursor", 3), ("event", 401),
          ("cursor", 2), ("event", 7), ("parent", 900), ("event", 333), ("cursor", 5)]


def raw_points(run_dir: Path, purge: bool = False) -> collections.Counter[tuple[str, int]]:
    """(tag, step) -> how many scalar events TensorBoard's EventAccumulator holds (all of them,
    or, with ``purge``, what its view keeps)."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    keep_all = {kind: 0 for kind in ea.DEFAULT_SIZE_GUIDANCE}
    acc = ea.EventAccumulator(str(run_dir), size_guidance=keep_all, purge_orphaned_data=purge).Reload()
    return collections.Counter((tag, e.step) for tag in acc.Tags()[ea.SCALARS] for e in acc.Scalars(tag))


def scalar_events(run_dir: Path) -> int:
    """Scalar values in all of the run's event files so far (read as they are being written)."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    return sum(len(e.summary.value) for f in sorted(run_dir.glob("events.out.tfevents.*"))
               for e in LegacyEventFileLoader(str(f)).Load() if e.HasField("summary"))


def run_child(tmp_path: Path, cycle: int, mode: str, at: int) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(cycle), str(STEPS), mode, str(at)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if mode == "parent":
            run_dir = tmp_path / "tensorboard" / "loop"
            target = scalar_events(run_dir) + at
            deadline = time.monotonic() + 300
            while child.poll() is None and time.monotonic() < deadline:
                if scalar_events(run_dir) >= target:
                    break
                time.sleep(0.05)
            child.send_signal(signal.SIGKILL)
        _, err = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, err[-3000:]


def test_ten_kills_at_varied_points_each_followed_by_sync_leave_every_point_once(tmp_path: Path) -> None:
    run_dir = tmp_path / "tensorboard" / "loop"
    for cycle, (mode, at) in enumerate(CYCLES):
        run_child(tmp_path, cycle, mode, at)
        assert cli(["sync", str(tmp_path)]) == 0
        points = raw_points(run_dir)
        # what the event log holds: a child killed at its first cursor update may not have logged
        # all its steps yet (on a quiet machine the worker delivers while the loop still logs)
        logged = [r for _, r in read_records(tmp_path / "events" / "loop.jsonl") if isinstance(r, Metrics)]
        assert logged, f"cycle {cycle}: nothing logged"
        expected = {(tag, r.step) for r in logged for tag in METRICS}
        assert set(points) == expected, f"cycle {cycle} ({mode} {at}): {len(expected - set(points))} missing"
        duplicated = sum(n - 1 for n in points.values())
        assert duplicated == 0, f"cycle {cycle} ({mode} {at}): {duplicated} duplicate points"

    assert raw_points(run_dir, purge=True) == raw_points(run_dir)  # TensorBoard's view: the same
    records = [r for _, r in read_records(tmp_path / "events" / "loop.jsonl")]
    assert [r.status for r in records if isinstance(r, RunEnd)] == ["killed"] * len(CYCLES)
    assert read_cursor(tmp_path / "events" / "loop.tensorboard.cursor.json")["seq"] == records[-1].seq

    ours = read_run_dir(run_dir)  # our reader, before it keeps one point per step
    assert collections.Counter(zip(ours.metrics, ours.steps)) == raw_points(run_dir)
    assert ours.params == {"lr": 1e-5, **{f"cycle/{c}": c for c in range(len(CYCLES))}}
    assert ours.tags == {f"attempt{c}": "yes" for c in range(len(CYCLES))}
    assert ours.status == "killed"


# -- item 2: a resumed run that crashes ------------------------------------------------------
RESUMED_CHILD = textwrap.dedent("""
    import os, signal, sys
    import rldk_track

    run_dir, uri, project, attempt = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    run = rldk_track.init(backend=["mlflow"], dir=run_dir, project=project, run_id="again",
                          mlflow={"tracking_uri": uri})
    for step in range(20):
        run.log({"reward": float(step)}, step=(0 if attempt == "first" else 20) + step)
    if attempt == "first":
        assert run.finish(timeout=120).complete
    else:
        assert run.flush(timeout=120).complete
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_resumed_run_that_is_killed_is_ended_as_killed_by_sync_in_the_log_and_in_mlflow(
        mlflow_server: Any, tmp_path: Path) -> None:
    import uuid

    project = f"resumed-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "child.py"
    script.write_text(RESUMED_CHILD)
    for attempt in ("first", "second"):
        child = subprocess.run([sys.executable, str(script), str(tmp_path), mlflow_server.uri, project, attempt],
                               capture_output=True, text=True, timeout=300)
        assert child.returncode == (0 if attempt == "first" else -signal.SIGKILL), child.stderr[-3000:]

    out = subprocess.run([sys.executable, "-m", "rldk_track.cli", "sync", str(tmp_path), "--json"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (result,) = json.loads(out.stdout)  # stdout is the JSON alone: MLflow's "View run" lines go to stderr
    assert (result["backend"], result["complete"]) == ("mlflow", True)
    assert "View run" in out.stderr

    records = [r for _, r in read_records(tmp_path / "events" / "again.jsonl")]
    assert [r.status for r in records if isinstance(r, RunEnd)] == ["success", "killed"]
    assert records[-1].kind == "run_end"
    client = mlflow_server.client()
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name(project).experiment_id])
    assert mlflow_run.info.status == "KILLED"
    assert sorted(m.step for m in client.get_metric_history(mlflow_run.info.run_id, "reward")) == list(range(40))


@pytest.mark.parametrize("fmt", [["--json"], ["--format", "json"]])
def test_sync_json_is_pure_json_on_stdout_even_with_nothing_to_do(tmp_path: Path, fmt: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "rldk_track.cli", "sync", str(tmp_path), *fmt],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert json.loads(out.stdout) == []
