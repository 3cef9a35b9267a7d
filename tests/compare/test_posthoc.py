"""Replaying a finished run's metrics through the analyzers."""

from __future__ import annotations

import math

from rldk_track.posthoc import replay
from rldk_track.records import Alert, Metrics


def test_replay_numbers_every_record_once_like_a_live_run():
    seen: list[int] = []

    class Spy:
        def observe(self, records):
            seen.extend(r.seq for r in records)
            return []

    records = [Metrics(i, 100.0 + i, i, {"loss": math.nan if i == 5 else 1.0}) for i in range(10)]
    emitted = replay(records, ["nonfinite", Spy()])
    assert [(a.step, a.state) for a in emitted if isinstance(a, Alert)] == [(5, "raised"), (6, "cleared")]
    assert len(seen) == len(set(seen)) == len(records) + len(emitted)
    assert [a.wall_time for a in emitted] == [105.0, 106.0]  # the metrics record's time, not the replay's


def test_write_back_to_a_tracker_reopens_it_from_the_registry_and_retries_and_isolates_refusals(fake_backend):
    """Write-back goes through the delivery machinery: the backend named by the run comes from
    the registry and says how to reopen the tracker run; a tracker that is down at first is
    retried, and a refused record is left out while the others are stored and the run re-ended."""
    from rldk_track import backends as registry
    from rldk_track.posthoc import write_back
    from rldk_track.posthoc.writeback import WRITE_BACK_SEQ
    from rldk_testsupport.fake_backend import FakeBackend, FakeStore

    class Reopenable(FakeBackend):
        down_at_first = 2

        @classmethod
        def reopen(cls, origin):
            return {}, {"fake_run": origin["fake_run"]}

        def open(self, state, resume):
            if Reopenable.down_at_first:
                Reopenable.down_at_first -= 1
                raise ConnectionError("fake tracker is not up yet")
            return super().open(state, resume)

    registry.register("fake", Reopenable)
    store = fake_backend["writeback01"] = FakeStore()
    store.reject = lambda r: isinstance(r, Alert) and r.rule == "refused"
    run = {"backend": "fake", "origin": {"fake_run": "writeback01"}, "run_id": "writeback01", "name": "wb",
           "status": "killed", "source": "fake://wb"}
    records = [Alert(-1, 1.0, 3, "kl_spike", "warning", "kl jumped"), Alert(-1, 1.0, 4, "refused", "warning", "no")]
    result = write_back(run, records)
    assert (result.records, result.refused) == (2, 1)
    assert store.opens == [{"fake_run": "writeback01"}] and Reopenable.down_at_first == 0
    assert [(r.rule, r.seq) for r in store.records if isinstance(r, Alert)] == [("kl_spike", WRITE_BACK_SEQ)]
    assert store.status == "killed"


def test_write_back_refuses_a_tracker_that_cannot_reopen_a_finished_run(fake_backend):
    import pytest

    from rldk_track.posthoc import WriteBackError, write_back

    run = {"backend": "fake", "origin": {}, "run_id": "noreopen001", "name": "nr", "status": "success",
           "source": "fake://nr"}
    with pytest.raises(WriteBackError, match=r"fake://nr \(fake\): fake runs cannot take records after they ended"):
        write_back(run, [Alert(-1, 1.0, 3, "kl_spike", "warning", "kl jumped")])
    assert "noreopen001" not in fake_backend
