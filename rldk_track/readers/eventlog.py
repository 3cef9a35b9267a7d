"""Read rldk_track's local event logs (``<dir>/events/<run_id>.jsonl``) and the seed's Event JSONL.

An rldk_track log has typed lines (``kind``: run_start, metrics, params, tags, summary, alert,
artifact, checkpoint_health, samples, run_end). A seed Event file has only per-step lines
(``step, wall_time, metrics, rng, data_slice, model_info, notes``, no ``kind``); its run is named
by ``model_info.run_id`` when present, else by the file name. A line cut short by a crash is
skipped (the core's reader rule).
"""

from __future__ import annotations

from pathlib import Path

from rldk_track.eventlog import read_lines
from rldk_track.layout import event_logs
from rldk_track.normalize import deep_merge, flatten
from rldk_track.readers.rundata import RunData, normalize_status


def is_event_log_source(path: Path) -> bool:
    """True for a ``.jsonl`` file, or a directory with event logs (``events/*.jsonl`` or ``*.jsonl``)."""
    if path.is_file():
        return path.suffix == ".jsonl"
    return path.is_dir() and bool(event_logs(path))


def read_event_logs(path: str | Path) -> list[RunData]:
    """Every run under ``path`` (a run directory, its ``events/`` folder or one ``.jsonl``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return [read_event_log(p) for p in event_logs(path)]


def read_event_log(path: str | Path) -> RunData:
    """One event log file as a :class:`RunData`."""
    path = Path(path)
    stem = path.name[: -len(".jsonl")] if path.name.endswith(".jsonl") else path.name
    run = RunData(name=stem, source=str(path), backend="jsonl", run_id=stem.partition(".rank")[0],
                  origin={"event_log": str(path.absolute())})
    status: str | None = None
    saw_start = False
    first_time: float | None = None
    last_time: float | None = None
    # Points are gathered per line with C-level list.extend (see RunData.add_points), which keeps
    # a 1M-point log to about a second.
    steps, metrics, values, walls = run.steps, run.metrics, run.values, run.wall_times
    for _, obj in read_lines(path):
        kind = obj.get("kind", "metrics")
        wall = obj.get("wall_time")
        if kind == "metrics":
            points = obj.get("metrics") or obj.get("values") or {}
            count = len(points)
            if count:
                step = int(obj.get("step", 0))
                wall = float(wall) if wall is not None else float("nan")
                steps.extend([step] * count)
                metrics.extend(points.keys())
                values.extend(points.values())
                walls.extend([wall] * count)
                if not saw_start:
                    model_run = (obj.get("model_info") or {}).get("run_id")
                    if model_run and run.run_id == stem.partition(".rank")[0]:
                        run.run_id = run.name = str(model_run)
        elif kind == "run_start":
            saw_start = True
            run.run_id = obj.get("run_id") or run.run_id
            run.name = obj.get("name") or run.run_id
            run.project = obj.get("project") or ""
            rank = int(obj.get("rank") or 0)
            if rank:
                run.name = f"{run.name} (rank {rank})"
            run.start_time = wall
        elif kind == "params":
            deep_merge(run.params, obj.get("values") or {})
        elif kind == "tags":
            run.tags.update({str(k): str(v) for k, v in (obj.get("values") or {}).items()})
        elif kind == "summary":
            run.summary.update(obj.get("values") or {})
        elif kind == "alert":
            run.add_alert(**obj)
        elif kind == "samples":
            run.add_samples(obj.get("step", 0), obj.get("name") or "samples", obj.get("columns") or [], obj.get("rows") or [])
        elif kind == "run_end":
            status = obj.get("status")
            run.end_time = wall
        if wall is not None and wall == wall:
            first_time = wall if first_time is None else min(first_time, wall)
            last_time = wall if last_time is None else max(last_time, wall)
    run.status = normalize_status(status)
    if run.start_time is None:
        run.start_time = first_time
    if run.end_time is None and status is not None:
        run.end_time = last_time
    run.params = flatten(run.params)
    _numeric(run)
    return run


def _numeric(run: RunData) -> None:
    """Values as floats (a seed file may hold ints, bools or nulls)."""
    if all(type(v) is float for v in run.values):
        return
    keep = [i for i, v in enumerate(run.values) if isinstance(v, (int, float))]
    if len(keep) != len(run.values):
        run.steps[:] = [run.steps[i] for i in keep]
        run.metrics[:] = [run.metrics[i] for i in keep]
        run.wall_times[:] = [run.wall_times[i] for i in keep]
        run.values[:] = [run.values[i] for i in keep]
    run.values[:] = [float(v) for v in run.values]
