"""A full disk under the event log: the trackers still get every record, the user hears once
when the log fails and once when it is written again, no torn line stays in the log, and
``finish`` says how many records the log lacks. The disk is a file object whose writes fail
with ENOSPC (after writing part of the data, as a real full disk does)."""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path

import pytest

import rldk_track
from rldk_track.readers.sources import read_source

pytest.importorskip("tensorboard")


class FillingDisk:
    """Wraps the event log's file: while ``full``, a write stores half its bytes then fails."""

    def __init__(self, file) -> None:
        self._file = file
        self.full = False

    def write(self, data) -> int:
        if self.full:
            self._file.write(bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)


def test_a_full_disk_loses_nothing_the_trackers_could_take(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = rldk_track.init(backend=["tensorboard"], dir=tmp_path, project="disk", run_id="full")
    event_log = run._dispatcher._event_log
    disk = event_log._file = FillingDisk(event_log._file)
    with caplog.at_level(logging.WARNING, "rldk_track"):
        for step in range(300):
            if step == 100:
                assert run.flush(timeout=120).complete
                disk.full = True
            if step == 200:
                run.flush(timeout=120)  # the 100 records went through while the disk was full
                disk.full = False
            run.log({"reward": float(step)}, step=step)
        report = run.finish(timeout=120)

    assert report.unlogged == 100 and not report.complete
    assert "100 records are not in the event log" in report.describe()
    messages = [r.getMessage() for r in caplog.records if r.name == "rldk_track"]
    assert len([m for m in messages if "cannot write the event log" in m]) == 1
    assert len([m for m in messages if "is written again" in m]) == 1

    lines = (tmp_path / "events" / "full.jsonl").read_bytes().splitlines()
    logged = [json.loads(line) for line in lines]  # no torn line: every line parses
    assert sorted(r["step"] for r in logged if r["kind"] == "metrics") == [*range(100), *range(200, 300)]
    (stored,) = read_source(str(tmp_path / "tensorboard"))
    assert sorted(v for m, v in zip(stored.metrics, stored.values) if m == "reward") == [float(s) for s in range(300)]
