"""Leaving without ``finish``: a script whose run lives only in a local of ``main()`` still ends
the run at interpreter exit (run_end in the event log, the tracker's status), with its last
points delivered."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rldk_track.eventlog import read_cursor, read_records
from rldk_track.records import Metrics, RunEnd

SCRIPT = """
import sys
import rldk_track

def main():
    run = rldk_track.init(backend=["tensorboard"], dir=sys.argv[1], project="exit", run_id="noexit")
    for step in range(50):
        run.log({"reward": float(step)}, step=step)
    {ending}

main()
"""


@pytest.mark.parametrize(("ending", "status"), [
    ("return", "success"), ("raise RuntimeError('boom')", "failed"),
    ("sys.exit(3)", "failed"), ("sys.exit(0)", "success"), ("sys.exit('bad input')", "failed"),
    ("exit(3)", "failed"), ("quit(0)", "success"), ("exit('bad input')", "failed"),
])
def test_a_run_never_finished_ends_at_exit_with_its_last_points(tmp_path: Path, ending: str, status: str) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT).replace("{ending}", ending))
    subprocess.run([sys.executable, str(script), str(tmp_path)], timeout=300, capture_output=True)
    records = [r for _, r in read_records(tmp_path / "events" / "noexit.jsonl", -1)]
    assert [r.status for r in records if isinstance(r, RunEnd)] == [status]
    assert sorted(r.step for r in records if isinstance(r, Metrics)) == list(range(50))
    cursor = (tmp_path / "events" / "noexit.tensorboard.cursor.json")
    assert cursor.exists(), "the TensorBoard worker never recorded a delivery"
    assert read_cursor(cursor)["seq"] == records[-1].seq  # everything, run_end included, delivered


WITH_SCRIPT = """
import sys
import rldk_track

with rldk_track.init(backend=["tensorboard"], dir=sys.argv[1], project="exit", run_id="withexit") as run:
    run.log({"reward": 1.0}, step=0)
    raise SystemExit(int(sys.argv[2]))
"""


@pytest.mark.parametrize(("code", "status"), [(3, "failed"), (0, "success")])
def test_system_exit_through_the_with_block_ends_the_run_by_its_code(tmp_path: Path, code: int, status: str) -> None:
    script = tmp_path / "script.py"
    script.write_text(WITH_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path), str(code)], timeout=300, capture_output=True)
    assert done.returncode == code
    records = [r for _, r in read_records(tmp_path / "events" / "withexit.jsonl", -1)]
    assert [r.status for r in records if isinstance(r, RunEnd)] == [status]


MLFLOW_SCRIPT = """
import sys
import rldk_track

run = rldk_track.init(backend=["mlflow"], dir=sys.argv[1], project="exit", run_id="mlflowexit",
                      mlflow={"tracking_uri": sys.argv[2]})
run.log({"reward": 1.0}, step=0)
sys.exit(3)
"""


def test_sys_exit_nonzero_marks_the_mlflow_run_failed(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    from rldk_track.vocab.mlflow import RUN_ID_TAG

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = tmp_path / "script.py"
    script.write_text(MLFLOW_SCRIPT)
    # A new sqlite store takes a while under load: give the exit hook the time to finish creating it.
    env = {**os.environ, "RLDK_EXIT_TIMEOUT": "280"}
    done = subprocess.run([sys.executable, str(script), str(tmp_path), uri], timeout=300, capture_output=True, env=env)
    assert done.returncode == 3, done.stderr.decode()[-2000:]
    records = [r for _, r in read_records(tmp_path / "events" / "mlflowexit.jsonl", -1)]
    assert [r.status for r in records if isinstance(r, RunEnd)] == ["failed"]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("exit").experiment_id],
                                f"tags.`{RUN_ID_TAG}` = 'mlflowexit'")
    assert run.info.status == "FAILED"
