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


def test_finish_waits_for_a_tracker_whose_first_start_is_still_in_progress(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new MLflow sqlite store takes seconds to create its tables: that start has not failed, so
    # finish must wait for it (the grace for trackers never reached would otherwise cut it short).
    import rldk_track.dispatch as dispatch

    monkeypatch.setattr(dispatch, "SAY_WAITING_AFTER_S", 0.01)
    monkeypatch.setattr(dispatch, "NEVER_REACHED_GRACE_S", 0.01)
    with caplog.at_level(logging.WARNING, "rldk_track"):
        run = rldk_track.init(backend=["mlflow"], dir=tmp_path, project="slow-start",
                              mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})
        for step in range(20):
            run.log({"reward": float(step)}, step=step)
        report = run.finish(timeout=600)
    assert report.complete, report
    assert not [r for r in caplog.records if "never reachable" in r.getMessage()]
