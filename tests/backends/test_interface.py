"""The Backend interface every tracker (built in or third party) implements: what the dispatcher
hands ``open`` on resume, and how declared options are checked. Shown with the fake backend;
each real tracker's own resume path is tested against the real thing in this folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rldk_track
from rldk_track import backends as registry
from rldk_track.eventlog import read_records


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


def test_a_backend_refuses_an_option_it_does_not_declare_and_names_the_close_match(tmp_path, fake_backend):
    from rldk_testsupport.fake_backend import FakeBackend

    class Tunable(FakeBackend):
        name = "tunable"
        accepted_options = {"endpoint": "where to send", "timeout_s": "seconds per request"}

    registry.register("tunable", Tunable)
    try:
        with pytest.raises(ValueError) as error:
            rldk_track.init(backend="tunable", dir=tmp_path, options={"tunable": {"endpiont": "http://127.0.0.1:1"}})
    finally:
        registry._registered.pop("tunable", None)
    assert str(error.value) == (
        "unknown tunable option 'endpiont' (did you mean 'endpoint'?); tunable options are:\n"
        "  endpoint: where to send\n  timeout_s: seconds per request"
    )
    assert not (tmp_path / "events").exists()  # it failed before the run started


def test_a_backend_that_declares_no_options_refuses_any(tmp_path, fake_backend):
    with pytest.raises(ValueError, match="fake options are: none"):
        rldk_track.init(backend="fake", dir=tmp_path, options={"fake": {"verbose": True}})


def test_the_backend_written_in_the_docs_records_a_run_and_continues_it_on_resume(tmp_path):
    doc = (Path(__file__).parents[2] / "docs" / "backends.md").read_text(encoding="utf-8")
    code = doc.split("## Writing a backend", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/backends.md", "exec"), {})  # defines LinesBackend and registers it
    try:
        with rldk_track.init(backend="lines", dir=tmp_path, run_id="lines000001") as run:
            run.log({"reward": 1.0}, step=0)
        with rldk_track.init(backend="lines", dir=tmp_path, run_id="lines000001") as run:
            run.log({"reward": 2.0}, step=1)
    finally:
        registry._registered.pop("lines", None)
    stored = [json.loads(line) for line in (tmp_path / "lines" / "lines000001.lines").read_text().splitlines()]
    assert stored == [{"step": 0, "reward": 1.0}, {"status": "success"}, {"step": 1, "reward": 2.0}, {"status": "success"}]
