"""Writing records back into a run (``rldk-track analyze --write``, ``compare --write``) holds the
run's lock: into a run that a live process records again (here a resumed run, in a real child
process), it fails at once naming that process, and the event log stays one writer's."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import rldk_track
from rldk_track.eventlog import read_records
from rldk_track.posthoc import WriteBackError, write_back
from rldk_testsupport.live_run import LiveRun
from rldk_track.readers import load_runs
from rldk_track.records import Alert, Metrics, RunEnd

def test_write_back_into_a_run_a_live_process_records_fails_naming_it_and_works_once_it_ended(tmp_path: Path) -> None:
    run = rldk_track.init(backend=["tensorboard"], dir=tmp_path, project="wb", run_id="wbrun")
    for step in range(10):
        run.log({"x": float(step)}, step=step)
    run.finish()
    runset = load_runs(tmp_path)
    (name,) = runset.run_names
    row = runset.runs.loc[name].to_dict()  # read while the run had ended: status success
    assert row["status"] == "success"
    alert = Alert(-1, 1.0, 3, "kl_spike", "warning", "kl jumped")
    path = tmp_path / "events" / "wbrun.jsonl"

    resumed = LiveRun(tmp_path, "wb", "wbrun", 10, 20, 30)
    try:
        lines = path.read_bytes()
        with pytest.raises(WriteBackError, match=rf"being recorded by pid {resumed.pid} on host {socket.gethostname()}"):
            write_back(row, [alert])
        assert path.read_bytes() == lines  # nothing appended
    finally:
        resumed.let_finish()

    result = write_back(row, [alert])
    assert result.synced == ["tensorboard: done"]
    records = [r for _, r in read_records(path)]
    assert [r.seq for r in records] == list(range(len(records)))  # one writer at a time: no seq twice
    assert [r.step for r in records if isinstance(r, Metrics)] == list(range(30))
    assert [r.rule for r in records if isinstance(r, Alert)] == ["kl_spike"]
    assert [r.status for r in records if isinstance(r, RunEnd)] == ["success"] * 3
    assert isinstance(records[-2], Alert) and isinstance(records[-1], RunEnd)  # after the resumed run's end
