"""Runs read back from any tracker, as pandas frames that line up whatever the source.

A :class:`RunSet` holds three frames:

``frame``  (long form, one row per point)
    ``run`` (category), ``step`` (int64), ``metric`` (category), ``value`` (float64),
    ``wall_time`` (float64 seconds since the epoch; NaN where the tracker keeps no time).
``runs``   (one row per run, indexed by ``run``)
    ``name, run_id, project, source, backend, status, health, params, tags, summary, alerts,
    start_time, end_time, steps, points, origin`` -- ``params`` (flattened with ``/``), ``tags`` and
    ``summary`` are dicts; ``alerts`` counts raised alerts; ``health`` is the run's health by the
    alert policy (:func:`rldk_track.alerts.health`: the worst severity among alerts raised and not
    cleared, ``ok`` when none); ``origin`` says where the run lives in
    its tracker (see :class:`~rldk_track.readers.rundata.RunData`).
``alerts`` (one row per alert)
    ``run`` and the alert's fields (:data:`rldk_track.alerts.ALERT_FIELDS`): ``seq, step,
    wall_time, rule, severity, state, metric, value, threshold, action, message``.
``samples`` (one row per sample row)
    ``run, step, name, row`` (the sample set's name and the row's position in it), then the
    cells by column (the union over the set's records; a column a record lacks is NaN).

``run`` is the run's name, made unique within the set: a name seen in several sources gets
`` [backend]`` and then `` #2``, `` #3``... appended, in load order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

from rldk_track.alerts import ALERT_FIELDS, counted, health
from rldk_track.readers.rundata import RunData

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger("rldk_track")

RUN_COLUMNS = (
    "name", "run_id", "project", "source", "backend", "status", "health", "params", "tags", "summary",
    "alerts", "start_time", "end_time", "steps", "points", "origin",
)
FRAME_COLUMNS = ("run", "step", "metric", "value", "wall_time")
SAMPLE_KEYS = ("run", "step", "name", "row")


@dataclass
class RunSet:
    """Runs from one or more trackers: ``frame`` (points), ``runs`` (one row a run), ``alerts``,
    ``samples``.

    Unpacks as the documented pair ``frame, runs = load_runs(...)``.
    """

    frame: "pd.DataFrame"
    runs: "pd.DataFrame"
    alerts: "pd.DataFrame"
    samples: "pd.DataFrame"

    def __iter__(self) -> Iterator["pd.DataFrame"]:
        return iter((self.frame, self.runs))

    def __len__(self) -> int:
        return len(self.runs)

    @property
    def run_names(self) -> list[str]:
        return list(self.runs.index)

    @property
    def metric_names(self) -> list[str]:
        """Every metric that has at least one point, sorted."""
        return sorted(self.frame["metric"].unique().tolist())

    def series(self, run: str, metric: str) -> "pd.DataFrame":
        """``step, value, wall_time`` of one run's metric, in step order."""
        f = self.frame
        rows = f[(f["run"] == run) & (f["metric"] == metric)]
        return rows[["step", "value", "wall_time"]].sort_values("step", kind="stable").reset_index(drop=True)

    def wide(self, metric: str) -> "pd.DataFrame":
        """One metric as a ``step x run`` table (the last value where a step repeats)."""
        f = self.frame[self.frame["metric"] == metric]
        return f.pivot_table(index="step", columns="run", values="value", aggfunc="last", observed=True)

    def select(self, runs: Sequence[str] | None = None, metrics: Sequence[str] | None = None) -> "RunSet":
        """A RunSet with only these runs and/or metrics (alerts of the chosen runs are kept)."""
        frame, table, alerts, samples = self.frame, self.runs, self.alerts, self.samples
        if runs is not None:
            missing = [r for r in runs if r not in table.index]
            if missing:
                raise KeyError(f"no run named {', '.join(map(repr, missing))}; runs: {', '.join(table.index)}")
            frame = frame[frame["run"].isin(runs)]
            table = table.loc[list(runs)]
            alerts = alerts[alerts["run"].isin(runs)]
            samples = samples[samples["run"].isin(runs)]
        if metrics is not None:
            frame = frame[frame["metric"].isin(metrics)]
        frame = frame.assign(
            run=frame["run"].cat.remove_unused_categories(),
            metric=frame["metric"].cat.remove_unused_categories(),
        ).reset_index(drop=True)
        return RunSet(frame, table, alerts.reset_index(drop=True), samples.reset_index(drop=True))


def unique_names(runs: Sequence[RunData]) -> list[str]:
    """Display names, unique within ``runs`` (see the module docstring for the rule)."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.name] = counts.get(run.name, 0) + 1
    names: list[str] = []
    taken: set[str] = set()
    for run in runs:
        name = run.name or run.run_id or "run"
        if counts.get(run.name, 0) > 1:
            name = f"{name} [{run.backend}]"
        candidate, k = name, 1
        while candidate in taken:
            k += 1
            candidate = f"{name} #{k}"
        taken.add(candidate)
        names.append(candidate)
    return names


def build_runset(runs: Sequence[RunData]) -> RunSet:
    """Assemble reader output into one :class:`RunSet` (a single copy of the points)."""
    import numpy as np
    import pandas as pd

    names = unique_names(runs)
    counts = [run.points for run in runs]
    total = sum(counts)
    steps = np.fromiter((s for run in runs for s in run.steps), dtype=np.int64, count=total)
    values = np.fromiter((v for run in runs for v in run.values), dtype=np.float64, count=total)
    wall = np.fromiter((w for run in runs for w in run.wall_times), dtype=np.float64, count=total)
    metric_codes, metric_names = _codes([run.metrics for run in runs], total)
    frame = pd.DataFrame({
        "run": pd.Categorical.from_codes(np.repeat(np.arange(len(runs)), counts), categories=names),
        "step": steps,
        "metric": pd.Categorical.from_codes(metric_codes, categories=metric_names),
        "value": values,
        "wall_time": wall,
    })

    frame = latest_attempt(frame)

    alert_rows = [{"run": name, **alert} for name, run in zip(names, runs) for alert in run.alerts]
    alerts = pd.DataFrame(alert_rows, columns=["run", *ALERT_FIELDS])
    if len(alerts):
        alerts = alerts.sort_values(["run", "step"], kind="stable").reset_index(drop=True)

    sample_rows = [{"run": name, **row} for name, run in zip(names, runs) for row in run.samples]
    samples = pd.DataFrame(sample_rows)
    samples = samples[[*SAMPLE_KEYS, *(c for c in samples.columns if c not in SAMPLE_KEYS)]] if len(samples) else pd.DataFrame(columns=list(SAMPLE_KEYS))
    if len(samples):
        samples = samples.sort_values(["run", "step", "name", "row"], kind="stable").reset_index(drop=True)

    kept = frame["run"].value_counts()  # points after latest_attempt
    table = pd.DataFrame(
        [
            {
                "name": run.name, "run_id": run.run_id, "project": run.project, "source": run.source,
                "backend": run.backend, "status": run.status, "health": health(run.alerts), "params": run.params, "tags": run.tags,
                "summary": run.summary,
                "alerts": sum(1 for a in run.alerts if counted(a)),
                "start_time": run.start_time, "end_time": run.end_time,
                "steps": len(set(run.steps)), "points": int(kept.get(name, 0)), "origin": run.origin,
            }
            for name, run in zip(names, runs)
        ],
        columns=list(RUN_COLUMNS),
        index=pd.Index(names, name="run"),
    )
    return RunSet(frame, table, alerts, samples)


def latest_attempt(frame: "pd.DataFrame") -> "pd.DataFrame":
    """One point per run, metric and step: where a step was logged more than once (a run resumed
    from a checkpoint trains the steps after it again), the latest attempt (latest wall time,
    else the later one read) is kept; how many points it superseded is logged per run."""
    keys = ["run", "metric", "step"]
    if not frame.duplicated(keys).any():
        return frame
    order = frame.sort_values([*keys, "wall_time"], kind="stable", na_position="first").index
    superseded = order[frame.loc[order].duplicated(keys, keep="last").to_numpy()]
    for run, count in frame.loc[superseded, "run"].value_counts().items():
        if count:
            log.info("rldk_track: run %s: %d points logged again at steps already logged (a resumed run); "
                     "the latest attempt is kept", run, count)
    return frame.drop(superseded).reset_index(drop=True)


def _codes(metric_lists: Sequence[Sequence[str]], total: int) -> tuple["np.ndarray", list[str]]:
    """Integer codes for metric names across runs, and the sorted names they index."""
    import numpy as np

    names = sorted({m for metrics in metric_lists for m in set(metrics)})
    index = {name: i for i, name in enumerate(names)}
    codes = np.fromiter((index[m] for metrics in metric_lists for m in metrics), dtype=np.int32, count=total)
    return codes, names
