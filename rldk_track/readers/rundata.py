"""One run as a reader found it: identity, config, status, alerts and its metric points.

Every reader (event log, MLflow, TensorBoard, W&B) returns :class:`RunData` values in one shape,
so the run set that :func:`rldk_track.readers.load_runs` builds does not care where a run came
from. Points are kept as flat parallel arrays (one entry per ``(step, metric, value)``), which is
what a long pandas frame is made of and far cheaper than a row object per point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from rldk_track.alerts import alert_row

#: Tracker run states mapped onto rldk_track's ``RunEnd`` statuses (plus ``running``/``unfinished``).
STATUS_ALIASES = {
    "finished": "success",
    "success": "success",
    "failed": "failed",
    "crashed": "failed",
    "killed": "killed",
    "running": "running",
    "scheduled": "running",
}


@dataclass
class RunData:
    """A run read back from a tracker, before it joins a :class:`~rldk_track.readers.runset.RunSet`.

    ``steps``, ``metrics``, ``values`` and ``wall_times`` are parallel: point ``i`` is metric
    ``metrics[i]`` at step ``steps[i]``. ``wall_times`` entries are seconds since the epoch
    (NaN where the tracker keeps no time). ``alerts`` holds one dict per alert with the keys of
    :data:`rldk_track.alerts.ALERT_FIELDS` (missing ones None).
    """

    name: str
    source: str
    backend: str
    run_id: str = ""
    project: str = ""
    status: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    start_time: float | None = None
    end_time: float | None = None
    steps: list[int] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    wall_times: list[float] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    #: One dict per sample row: ``step``, ``name`` (the sample set), ``row`` (its position in the
    #: set) and the row's cells by column (the key names win over a cell of the same name).
    samples: list[dict[str, Any]] = field(default_factory=list)
    #: Where the run lives in its tracker, to write back to it (``event_log``; ``tracking_uri``
    #: and ``mlflow_run_id``; ``log_dir``; ``wandb_dir``/``wandb_path``).
    origin: dict[str, str] = field(default_factory=dict)

    def add_points(self, step: int, values: Mapping[str, float], wall_time: float) -> None:
        """Append every ``metric -> value`` of one step (the caller gives floats)."""
        count = len(values)
        self.steps.extend([step] * count)
        self.metrics.extend(values.keys())
        self.values.extend(values.values())
        self.wall_times.extend([wall_time] * count)

    def add_series(self, metric: str, steps: Iterable[int], values: Iterable[float], wall_times: Iterable[float]) -> None:
        """Append one metric's history (three equally long sequences)."""
        steps, values, wall_times = list(steps), list(values), list(wall_times)
        self.steps.extend(steps)
        self.values.extend(values)
        self.wall_times.extend(wall_times)
        self.metrics.extend([metric] * len(steps))

    def add_alert(self, **fields: Any) -> None:
        """Record one alert; unknown keys are ignored, missing ones are None."""
        self.alerts.append(alert_row(fields))

    def add_samples(self, step: int, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Record one sample set (a ``samples`` record's ``columns`` and ``rows``); a set read
        again at the same step and name (a replayed record) replaces the earlier one."""
        step = int(step)
        self.samples = [s for s in self.samples if (s["step"], s["name"]) != (step, name)]
        for index, row in enumerate(rows):
            self.samples.append({**dict(zip(columns, row)), "step": step, "name": name, "row": index})

    @property
    def points(self) -> int:
        return len(self.values)


def normalize_status(raw: str | None) -> str:
    """A tracker's run state as ``success``/``failed``/``killed``/``running``, or ``unfinished``
    when the tracker recorded no end."""
    if not raw:
        return "unfinished"
    return STATUS_ALIASES.get(str(raw).strip().lower(), str(raw).strip().lower())
