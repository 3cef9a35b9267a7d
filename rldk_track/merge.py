"""Line up the per-rank event logs of one distributed run (``init(per_rank=True)``).

Rank 0 writes ``<dir>/events/<run_id>.jsonl``, rank k ``<run_id>.rank<k>.jsonl``, each starting
with a ``run_start`` record that names its rank and host. :func:`read_ranks` reads them into one
long frame (``run_id, rank, host, step, metric, value``); :func:`rank_spread` gives, per step and
metric, the min/mean/max over ranks and which rank was lowest and highest; :func:`rank_summary`
condenses that per metric: typical spread, worst step, and the rank that is most often the
highest — the straggler for ``perf/step_s``, the memory hog for ``system/peak_proc_rss_gb``.
``rldk-track merge DIR`` prints the summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from rldk_track.eventlog import read_lines
from rldk_track.layout import RunLayout, event_logs

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["run_id", "rank", "host", "step", "metric", "value", "wall_time"]


@dataclass(frozen=True)
class RankLog:
    """One rank's event log of a run."""

    run_id: str
    rank: int
    world_size: int
    host: str
    path: Path


def rank_logs(source: str | os.PathLike[str], run_id: str | None = None) -> dict[str, list[RankLog]]:
    """The event logs under ``source`` (a run directory or one ``.jsonl``), grouped by run id
    and sorted by rank; only ``run_id`` when given."""
    runs: dict[str, list[RankLog]] = {}
    for path in event_logs(Path(source)):
        layout = RunLayout.from_event_log(path)
        if run_id is not None and layout.run_id != run_id:
            continue
        suffix_rank = int(layout.rank_suffix[len(".rank"):]) if layout.rank_suffix else 0
        rank, world_size, host = suffix_rank, 1, ""
        for _, obj in read_lines(path):
            if obj.get("kind") == "run_start":
                rank, world_size, host = int(obj.get("rank", suffix_rank)), int(obj.get("world_size", 1)), str(obj.get("host", ""))
            break
        runs.setdefault(layout.run_id, []).append(RankLog(layout.run_id, rank, world_size, host, path))
    return {rid: sorted(logs, key=lambda log: log.rank) for rid, logs in runs.items()}


def read_ranks(
    source: str | os.PathLike[str],
    run_id: str | None = None,
    metrics: Sequence[str] | None = None,
) -> "pd.DataFrame":
    """Every metric point of every rank as one long frame (columns :data:`COLUMNS`); a point
    logged twice at one step by one rank keeps its last value."""
    import pandas as pd

    wanted = set(metrics) if metrics else None
    rows: list[tuple[object, ...]] = []
    for logs in rank_logs(source, run_id).values():
        for rank_log in logs:
            rows.extend(_metric_rows(rank_log, wanted))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if frame.empty:
        return frame
    frame = frame.drop_duplicates(["run_id", "rank", "step", "metric"], keep="last")
    return frame.sort_values(["run_id", "metric", "step", "rank"], ignore_index=True)


def _metric_rows(rank_log: RankLog, wanted: set[str] | None) -> Iterable[tuple[object, ...]]:
    for _, obj in read_lines(rank_log.path):
        if obj.get("kind", "metrics") != "metrics":
            continue
        step = obj.get("step")
        values = obj.get("metrics") or {}
        for metric, value in values.items():
            if (wanted is None or metric in wanted) and isinstance(value, (int, float)):
                yield rank_log.run_id, rank_log.rank, rank_log.host, step, metric, float(value), obj.get("wall_time")


def rank_spread(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Per ``run_id, step, metric``: ``ranks`` reporting, ``min``, ``mean``, ``max``, ``spread``
    (max - min), ``imbalance`` (max / mean, 1.0 = even) and the ``min_rank`` / ``max_rank``."""
    import numpy as np
    import pandas as pd

    if frame.empty:
        return pd.DataFrame(columns=["run_id", "step", "metric", "ranks", "min", "mean", "max", "spread",
                                     "imbalance", "min_rank", "max_rank"])
    keys = ["run_id", "step", "metric"]
    grouped = frame.groupby(keys, sort=True)["value"]
    out = grouped.agg(ranks="count", min="min", mean="mean", max="max").reset_index()
    out["spread"] = out["max"] - out["min"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["imbalance"] = np.where(out["mean"] != 0, out["max"] / out["mean"], np.nan)
    out["min_rank"] = frame.loc[grouped.idxmin().to_numpy(), "rank"].to_numpy()
    out["max_rank"] = frame.loc[grouped.idxmax().to_numpy(), "rank"].to_numpy()
    return out


def rank_summary(spread: "pd.DataFrame") -> "pd.DataFrame":
    """Per ``run_id, metric`` over the steps that more than one rank reported: ``steps``,
    ``ranks``, the average ``min``/``mean``/``max``, ``mean_spread``, the ``worst_spread`` and its
    ``worst_step``, and ``highest_rank`` with ``highest_share`` (the fraction of the uneven steps on
    which it had the highest value; -1 when all ranks always agree). Sorted by how uneven each
    metric is (``relative_spread`` = mean spread / |mean|)."""
    import pandas as pd

    columns = ["run_id", "metric", "steps", "ranks", "min", "mean", "max", "mean_spread", "worst_spread",
               "worst_step", "highest_rank", "highest_share", "relative_spread"]
    multi = spread[spread["ranks"] > 1] if not spread.empty else spread
    if multi.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (run_id, metric), group in multi.groupby(["run_id", "metric"], sort=True):
        worst = group.loc[group["spread"].idxmax()]
        uneven = group[group["spread"] > 0]
        counts = uneven["max_rank"].value_counts()
        mean = float(group["mean"].mean())
        rows.append({
            "run_id": run_id, "metric": metric, "steps": len(group), "ranks": int(group["ranks"].max()),
            "min": float(group["min"].mean()), "mean": mean, "max": float(group["max"].mean()),
            "mean_spread": float(group["spread"].mean()), "worst_spread": float(worst["spread"]),
            "worst_step": int(worst["step"]),
            "highest_rank": int(counts.index[0]) if len(counts) else -1,  # -1: every rank equal
            "highest_share": float(counts.iloc[0] / len(uneven)) if len(counts) else 0.0,
            "relative_spread": float(group["spread"].mean() / abs(mean)) if mean else float("nan"),
        })
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["run_id", "relative_spread"], ascending=[True, False], ignore_index=True)
