"""The Backend interface every tracker (built in or third party) implements: what the dispatcher
hands ``open`` on resume, and how declared options are checked. Shown with the fake backend;
each real tracker's own resume path is tested against the real thing in this folder."""

from __future__ import annotations

import rldk_track
from rldk_track.backends.jsonl import read_records


def test_open_is_handed_the_delivered_seq_and_the_logged_records_it_supports(tmp_path, fake_backend):
    first = rldk_track.init(backend="fake", dir=tmp_path, run_id="handover001")
    first.log({"x": 1}, step=1)
    first.finish()
    delivered = max(r.seq for _, r in read_records(tmp_path / "events" / "handover001.jsonl"))
    second = rldk_track.init(backend="fake", dir=tmp_path, run_id="handover001")
    second.log({"x": 2}, step=2)
    second.finish()

    new, resumed = fake_backend["handover001"].resumes
    assert new.delivered_seq == -1
    assert resumed.delivered_seq == delivered
    logged = [r for _, r in read_records(tmp_path / "events" / "handover001.jsonl")]
    supported = [r for r in logged if r.kind != "run_start"]  # the fake, like most, stores no run_start
    assert list(resumed.records_after(-1)) == supported
    assert [r.step for r in resumed.records_after(delivered) if r.kind == "metrics"] == [2]
