"""Run the analyzers over a finished run read back from any tracker.

The run's points are replayed in step order as one ``Metrics`` record per step (points logged at
the same step are merged; the step's earliest wall time is kept) through the same observers that
``init(analyzers=...)`` attaches to a live run, by the dispatcher's one feed loop
(:meth:`rldk_track.observer.Observers.feed`): records an observer returns are shown to every
observer too, and each observer's ``finish()`` runs at the end.
Alerts the run already holds (same rule, step and state, e.g. raised live by the same analyzers)
are not reported again.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from rldk_track.observer import Observers
from rldk_track.records import Alert, Metrics, Record

if TYPE_CHECKING:
    import pandas as pd

    from rldk_track.readers.runset import RunSet


def metric_records(points: "pd.DataFrame") -> Iterator[Metrics]:
    """One ``Metrics`` record per step of a run's points (``step, metric, value, wall_time``)."""
    import numpy as np

    ordered = points.sort_values("step", kind="stable")
    steps = ordered["step"].to_numpy()
    names = ordered["metric"].astype(str).to_numpy()
    values = ordered["value"].to_numpy(dtype=float)
    walls = ordered["wall_time"].to_numpy(dtype=float)
    if not steps.size:
        return
    starts = np.flatnonzero(np.r_[True, steps[1:] != steps[:-1]])
    ends = np.r_[starts[1:], steps.size]
    for seq, (start, end) in enumerate(zip(starts, ends)):
        wall = np.nanmin(walls[start:end]) if np.isfinite(walls[start:end]).any() else math.nan
        yield Metrics(seq, float(wall) if wall == wall else 0.0, int(steps[start]),
                      dict(zip(names[start:end].tolist(), values[start:end].tolist())))


def replay(records: Iterable[Metrics], analyzers: Any = "default") -> list[Record]:
    """Feed ``records`` to fresh observers built from ``analyzers`` (see
    :func:`rldk_track.analyzers.build_observers`); return everything they emitted, in order.

    Emitted records get ``seq`` numbers in emission order and the wall time of the metrics
    record that caused them (not the time of this replay), so a second replay of the same run
    gives equal records."""
    from rldk_track.analyzers import build_observers

    observers = Observers(build_observers(analyzers))
    emitted: list[Record] = []
    seq = 0
    wall = 0.0

    def deliver(produced: list[Record]) -> list[Record]:
        nonlocal seq
        numbered = [replace(record, seq=seq + i, wall_time=wall) for i, record in enumerate(produced)]
        seq += len(numbered)
        emitted.extend(numbered)
        return numbered

    for record in records:
        wall = record.wall_time
        numbered = replace(record, seq=seq)
        seq += 1
        observers.feed([numbered], deliver)
    observers.feed(deliver(observers.finish()), deliver)
    return emitted


def analyze_run(runset: "RunSet", run: str, analyzers: Any = "default") -> list[Record]:
    """What the analyzers say about one run of ``runset`` that the run does not hold yet:
    new alerts (and the analyzers' summaries)."""
    frame = runset.frame
    emitted = replay(metric_records(frame[frame["run"] == run]), analyzers)
    alerts = runset.alerts[runset.alerts["run"] == run]
    known = {(a.rule, _step(a.step), a.state or "raised") for a in alerts.itertuples()}
    return [r for r in emitted if not (isinstance(r, Alert) and (r.rule, r.step, r.state) in known)]


def _step(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
