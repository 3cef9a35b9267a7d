"""The one observer contract: records an observer emits are delivered and shown to every
observer in turn until nothing more is emitted, ``finish()`` adds the last ones, and an observer
that raises is reported once while the others go on -- the same in a live run and in a replay."""

from __future__ import annotations

import logging

import rldk_track
from rldk_track.eventlog import read_records
from rldk_track.observer import Observers, is_observer
from rldk_track.posthoc import replay
from rldk_track.records import Alert, Metrics, Summary


class Echo:
    """Answers each metrics record with an alert, and each alert with a summary (a cascade)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def observe(self, records):
        self.seen.extend(r.kind for r in records)
        for r in records:
            if isinstance(r, Metrics):
                yield Alert(-1, r.wall_time, r.step, "echo", "info", "seen")
            elif isinstance(r, Alert):
                yield Summary(-1, r.wall_time, {f"echo/{r.step}": 1})

    def finish(self):
        return [Alert(-1, 0.0, 99, "echo", "info", "done")]


class Broken:
    def observe(self, records):
        raise RuntimeError("analyzer bug")


def test_the_feed_delivers_what_observers_emit_until_they_stop_and_reports_a_failure_once(caplog):
    echo = Echo()
    observers = Observers([Broken(), echo])
    delivered: list = []

    def deliver(records):
        delivered.extend(records)
        return records

    with caplog.at_level(logging.ERROR, "rldk_track"):
        observers.feed([Metrics(0, 1.0, 0, {"x": 1.0})], deliver)
        observers.feed([Metrics(1, 2.0, 1, {"x": 1.0})], deliver)
    assert [r.kind for r in delivered] == ["alert", "summary", "alert", "summary"]
    assert echo.seen == ["metrics", "alert", "summary"] * 2
    assert sum("analyzer bug" in m or "observer" in m for m in caplog.messages) == 1
    assert [r.step for r in observers.finish()] == [99]
    assert is_observer(echo) and not is_observer(object())


def test_a_live_run_and_a_replay_feed_observers_alike(tmp_path):
    run = rldk_track.init(dir=tmp_path, observers=[Echo()])
    for step in range(3):
        run.log({"x": float(step)}, step=step)
    run.finish()
    live = [r for _, r in read_records(run.event_log) if isinstance(r, (Alert, Summary))]
    replayed = replay([r for _, r in read_records(run.event_log) if isinstance(r, Metrics)], [Echo()])
    # a live run hands observers batches (here all three steps at once), a replay one step at a
    # time: the same records come out, in batch order
    shape = lambda records: sorted((r.kind, getattr(r, "step", -1), str(getattr(r, "values", ""))) for r in records)  # noqa: E731
    assert shape(replayed) == shape(live)
    assert ("alert", 99, "") in shape(live) and ("summary", -1, "{'echo/99': 1}") in shape(live)
