"""``rldk-track list [SOURCE...]``: the runs in a store, one line each (like ``mlflow runs list``)."""

from __future__ import annotations

import argparse
import json
import time

from rldk_track.cli.common import add_format_arguments, fail, load, resolve_dir

EPILOG = """\
SOURCE is anything `compare` reads: a run directory (its event logs), an MLflow sqlite store or
mlflow://EXPERIMENT, a TensorBoard log dir, a W&B offline directory. Without one: the run
directory (RLDK_TRACK_DIR, else ./rldk_runs).

examples:
  rldk-track list
  rldk-track list rldk_runs/mlflow.db rldk_runs/tensorboard --json

exit codes: 0 listed (also when there are no runs); 2 bad input (unknown source).
"""

COLUMNS = ("run", "run_id", "backend", "status", "health", "steps", "started")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "list",
        help="list the runs in a store (event logs, MLflow, TensorBoard, W&B offline): name, id, status, health",
        description="One line per run: its name, id, tracker, status, health and steps.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="where the runs are (default: the run directory)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for mlflow:// sources (default: MLFLOW_TRACKING_URI)")
    add_format_arguments(p, what="the list")
    p.set_defaults(func=run, run=None, no_progress=True)


def run(args: argparse.Namespace) -> int:
    if not args.sources:
        run_dir = resolve_dir(None)
        if not (run_dir / "events").is_dir():
            print(f"no runs under {run_dir} (start one, or name a store: rldk-track list SOURCE)")
            return 0
        args.sources = [str(run_dir)]
    try:
        runset = load(args)
    except (ValueError, KeyError, LookupError, FileNotFoundError) as exc:
        return fail(exc)
    rows = [
        {"run": name, "run_id": row.run_id, "backend": row.backend, "status": row.status, "health": row.health,
         "steps": int(row.steps), "started": _when(row.start_time), "source": row.source}
        for name, row in runset.runs.iterrows()
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print(f"no runs in {', '.join(args.sources)}")
        return 0
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    print("  ".join(c.upper().ljust(widths[c]) for c in COLUMNS))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in COLUMNS).rstrip())
    return 0


def _when(start_time: float | None) -> str:
    if start_time is None or start_time != start_time:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(start_time))
