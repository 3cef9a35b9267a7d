"""What ``finish`` says while it waits: a tracker never reachable during the run is given up on
early with a message naming ``rldk-track sync``; the records stay in the event log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import rldk_track
from rldk_testsupport.mlflow_server import free_port

pytest.importorskip("mlflow")


def test_finish_gives_up_early_on_a_tracker_never_reached_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with caplog.at_level(logging.WARNING, "rldk_track"):
        run = rldk_track.init(backend=["mlflow"], dir=tmp_path, project="dead", mlflow={"tracking_uri": dead})
        for step in range(20):
            run.log({"reward": float(step)}, step=step)
        report = run.finish(timeout=600)
    assert not report.complete and report.pending["mlflow"] > 0
    said = [r.getMessage() for r in caplog.records if "never reachable" in r.getMessage()]
    assert len(said) == 1 and f"rldk-track sync {tmp_path}" in said[0]
