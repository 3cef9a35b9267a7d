"""Leaving without ``finish``: a script whose run lives only in a local of ``main()`` still ends
the run at interpreter exit (run_end in the event log, the tracker's status), with its last
points delivered."""

from __future__ import annotations

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


@pytest.mark.parametrize(("ending", "status"), [("return", "success"), ("raise RuntimeError('boom')", "failed")])
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
