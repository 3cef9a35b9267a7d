"""A run that ends between sync's first read of its event log and sync taking its lock gets no
second run_end: sync reads the log again under the lock. The run and its end are real (a child
process); only the moment it ends is chosen, by finishing it just before sync takes the lock."""

from __future__ import annotations

from pathlib import Path

import pytest

import rldk_track.sync as sync_module
from rldk_track.eventlog import read_records
from rldk_track.records import Metrics, RunEnd
from rldk_track.runlock import live_or_locked
from rldk_testsupport.live_run import LiveRun

def test_a_run_ending_before_sync_takes_its_lock_gets_exactly_one_run_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = LiveRun(tmp_path, "race", "racerun", 0, 5, 10)

    def finish_then_lock(layout, force=False):  # the run ends after sync's first read
        live.let_finish()
        return live_or_locked(layout, force)

    monkeypatch.setattr(sync_module, "live_or_locked", finish_then_lock)
    (result,) = sync_module.sync(tmp_path)
    assert result.complete
    logged = [r for _, r in read_records(tmp_path / "events" / "racerun.jsonl")]
    assert [r.status for r in logged if isinstance(r, RunEnd)] == ["success"]
    assert isinstance(logged[-1], RunEnd)
    assert [r.step for r in logged if isinstance(r, Metrics)] == list(range(10))
