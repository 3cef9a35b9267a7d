"""A run recorded by another, real process that stays live until the test lets it finish: for
the tests of the run lock (a second writer, sync and write-back against a live run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
import rldk_track

dir, project, run_id, first, middle, last = sys.argv[1:]
run = rldk_track.init(backend=["tensorboard"], dir=dir, project=project, run_id=run_id)
for step in range(int(first), int(middle)):
    run.log({"x": float(step)}, step=step)
run.flush()
print("ready", flush=True)
sys.stdin.readline()  # held live until the test says go on
for step in range(int(middle), int(last)):
    run.log({"x": float(step)}, step=step)
run.finish()
"""


class LiveRun:
    """A child process that records ``run_id`` in ``dir`` (metric ``x``, TensorBoard): steps
    ``first`` to ``middle`` before it says ready, the rest up to ``last`` once let go on."""

    def __init__(self, dir: Path, project: str, run_id: str, first: int, middle: int, last: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(dir), project, run_id, str(first), str(middle), str(last)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.process.pid

    def let_finish(self) -> None:
        """Let the child log the rest and finish; it must exit 0."""
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.close()
        assert self.process.wait(300) == 0
