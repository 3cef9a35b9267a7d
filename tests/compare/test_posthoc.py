"""Replaying a finished run's metrics through the analyzers."""

from __future__ import annotations

import math

from rldk_track.compare.posthoc import replay
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
