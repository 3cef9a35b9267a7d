"""Run the analyzers over a finished run read back from any tracker.

The run's points are replayed in step order as one ``Metrics`` record per step (points logged at
the same step are merged; the step's earliest wall time is kept), with its sample sets as
``Samples`` records (each set just before its step's metrics, as a live run logs them), through
the same observers that ``init(analyzers=...)`` attaches to a live run, by the dispatcher's one feed loop
(:meth:`rldk_track.observer.Observers.feed`): records an observer returns are shown to every
observer too, and each observer's ``finish()`` runs at the end.
Alerts the run already holds (same rule, step and state, e.g. raised live by the same analyzers)
are not reported again. Since rules see the sample sets, a post-hoc alert carries evidence rows
(:mod:`rldk_track.analyzers.evidence`) as a live one does, and the sample rules judge them.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from rldk_track.observer import Observers
from rldk_track.records import Alert, Metrics, Record, Samples

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


def sample_records(samples: "pd.DataFrame", walls: Mapping[int, float]) -> Iterator[Samples]:
    """One ``Samples`` record per sample set (``step, name``) of a run's rows of
    :attr:`RunSet.samples <rldk_track.readers.runset.RunSet.samples>`, in step order, rows in their
    logged order. Its columns are those the set has a value in (a column only other sets have is
    NaN throughout it); a missing cell is None. ``walls`` gives a step's wall time (0.0 if none)."""
    from rldk_track.readers.runset import SAMPLE_KEYS

    cells = [c for c in samples.columns if c not in SAMPLE_KEYS]
    for (step, name), rows in samples.groupby(["step", "name"], sort=True):
        table = rows.sort_values("row", kind="stable")[cells]
        table = table.loc[:, table.notna().any().to_numpy()].astype(object)
        values = table.where(table.notna(), None).to_numpy().tolist()
        yield Samples(-1, walls.get(int(step), 0.0), int(step), tuple(map(str, table.columns)),
                      tuple(map(tuple, values)), str(name))


def replay(records: Iterable[Metrics | Samples], analyzers: Any = "default") -> list[Record]:
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
    points = frame[frame["run"] == run]
    walls = points.groupby("step")["wall_time"].min().fillna(0.0).to_dict()
    sets = sample_records(runset.samples[runset.samples["run"] == run], walls)
    # a step's sample sets before its metrics: on equal steps merge takes its first input first
    records = heapq.merge(sets, metric_records(points), key=lambda record: record.step)
    emitted = replay(records, analyzers)
    alerts = runset.alerts[runset.alerts["run"] == run]
    known = {(a.rule, _step(a.step), a.state or "raised") for a in alerts.itertuples()}
    return [r for r in emitted if not (isinstance(r, Alert) and (r.rule, r.step, r.state) in known)]


def _step(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
