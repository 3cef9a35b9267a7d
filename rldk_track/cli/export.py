"""``rldk-track export SOURCE... -o FILE``: runs read back from any tracker, written out as files."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from rldk_track.cli.common import add_source_arguments, fail, load, write_frame
from rldk_track.keymaps import resolve

EPILOG = """\
Writes two files:
  FILE (.parquet, .csv or .jsonl)   the points, one row each: run, step, metric, value, wall_time
  FILE's stem + .runs.json          one entry per run: name, run_id, project, backend, status,
                                    health, params, tags, summary, start/end time, steps, and
                                    its alerts
SOURCE is anything `compare` reads (event logs, MLflow, TensorBoard, W&B).

examples:
  rldk-track export rldk_runs -o runs.parquet
  rldk-track export rldk_runs/mlflow.db --metric reward/mean -o reward.csv

exit codes: 0 written; 2 bad input (unknown source, run or metric, unknown file type).
"""

FORMATS = (".parquet", ".csv", ".jsonl")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write runs from any tracker to a Parquet/CSV/JSONL file of points and a JSON summary",
        description="Read runs from event logs, MLflow, TensorBoard or W&B and write their points "
        "(long form) and a per-run JSON summary.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_arguments(p, "where the runs are (same sources as `compare`)")
    p.add_argument("-m", "--metric", action="append", metavar="NAME", help="only this metric (repeatable)")
    p.add_argument("-o", "--output", "--out", dest="output", required=True, metavar="FILE",
                   help=f"the points file; its suffix picks the format ({', '.join(FORMATS)})")
    p.set_defaults(func=run)


def summary_path(points: Path) -> Path:
    """Where the per-run summary of ``points`` goes: ``runs.parquet`` -> ``runs.runs.json``."""
    return points.with_name(points.stem + ".runs.json")


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix not in FORMATS:
        return fail(ValueError(f"-o {output}: the file type is picked by its suffix: {', '.join(FORMATS)}"))
    try:
        runset = load(args)
        if args.metric:
            metrics = [resolve(m, runset.metric_names) for m in args.metric]
            unknown = [m for m in metrics if m not in runset.metric_names]
            if unknown:
                raise KeyError(f"no run logged {', '.join(map(repr, unknown))}; metrics: {', '.join(runset.metric_names)}")
            runset = runset.select(metrics=metrics)
    except (ValueError, KeyError, LookupError, FileNotFoundError) as exc:
        return fail(exc)
    frame = runset.frame.assign(run=runset.frame["run"].astype(str), metric=runset.frame["metric"].astype(str))
    write_frame(frame, output)
    alerts = runset.alerts
    runs = []
    for name, row in runset.runs.iterrows():
        entry = {"run": name, **{k: _plain(v) for k, v in row.items()}}
        entry["alerts"] = [{k: _plain(v) for k, v in a.items() if k != "run"}
                           for a in alerts[alerts["run"] == name].to_dict(orient="records")]
        runs.append(entry)
    summary = summary_path(output)
    summary.write_text(json.dumps(runs, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"{len(frame)} points of {len(runs)} run{'s' if len(runs) != 1 else ''} written to {output}; runs to {summary}", file=sys.stderr)
    return 0


def _plain(value: object) -> object:
    """A JSON-friendly value: NaN (pandas' missing) as None, numpy scalars as Python ones."""
    if hasattr(value, "item") and not isinstance(value, (dict, list, str)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
