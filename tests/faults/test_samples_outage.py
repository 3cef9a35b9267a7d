"""Samples logged while the tracker is down are not lost: a process records sample sets into a
real MLflow server on 127.0.0.1, the server stops, the process logs more and exits with MLflow
behind, and ``rldk-track sync`` delivers the rest: MLflow's own reader (``load_runs``) sees every
row exactly once, and a second sync adds nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow")

from rldk_track.eventlog import read_cursor, read_lines  # noqa: E402
from rldk_track.readers import load_runs  # noqa: E402

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

CHILD = textwrap.dedent(
    """
    import sys
    import rldk_track

    run = rldk_track.init(backend=["mlflow"], dir=sys.argv[1], project=sys.argv[2], analyzers=None,
                          mlflow={"tracking_uri": sys.argv[3], "http_timeout": 2, "http_max_retries": 1})

    def log(step):
        run.log({"reward": step * 0.5}, step=step)
        run.log_samples({"prompt": [f"p{step}-{i}" for i in range(3)], "completion": ["c" * (step + i) for i in range(3)],
                         "reward": [step + i / 10 for i in range(3)]}, step=step, name="completions")

    for step in range(3):
        log(step)
    assert run.flush(timeout=120), "MLflow is up: the first sets arrive"
    print("delivered", flush=True)
    sys.stdin.readline()  # the test stops the server
    for step in range(3, 6):
        log(step)
    report = run.finish(timeout=3)
    print("complete" if report.complete else "behind", flush=True)
    """
)


def rldk_track_sync(dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rldk_track.cli", "sync", str(dir)], capture_output=True, text=True,
                          timeout=300, env=ENV)


def rows_in_mlflow(project: str, uri: str) -> list[tuple[int, str, str, float]]:
    samples = load_runs(f"mlflow://{project}", tracking_uri=uri).samples
    return sorted(zip(samples["step"].astype(int), samples["prompt"], samples["completion"], samples["reward"].astype(float)))


def test_samples_logged_while_mlflow_is_down_arrive_once_after_sync(mlflow_server_factory: Any, tmp_path: Path) -> None:
    server = mlflow_server_factory()
    project = f"samples-outage-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    run_dir = tmp_path / "runs"
    child = subprocess.Popen([sys.executable, str(script), str(run_dir), project, server.uri], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "delivered"
        assert sorted({row[0] for row in rows_in_mlflow(project, server.uri)}) == [0, 1, 2]
        server.stop()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "behind"
        assert child.wait(timeout=300) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    (event_log,) = (run_dir / "events").glob("*.jsonl")
    logged = [obj for _, obj in read_lines(event_log) if obj.get("kind") == "samples"]
    assert [obj["step"] for obj in logged] == [0, 1, 2, 3, 4, 5]
    cursor = read_cursor(event_log.with_name(event_log.stem + ".mlflow.cursor.json"))
    assert cursor["seq"] < logged[-1]["seq"], "MLflow was down: the last sets never reached it"

    server.start()
    first = rldk_track_sync(run_dir)
    assert first.returncode == 0, first.stdout + first.stderr
    expected = sorted((obj["step"], *row) for obj in logged for row in obj["rows"])
    assert len(expected) == 18
    assert rows_in_mlflow(project, server.uri) == expected

    second = rldk_track_sync(run_dir)
    assert second.returncode == 0 and "already up to date" in second.stdout, second.stdout + second.stderr
    assert rows_in_mlflow(project, server.uri) == expected
