"""``rldk-track samples SOURCE [--step N] [--sort reward]``: a run's sample rows in the terminal."""

from __future__ import annotations

import argparse
import json

from rldk_track.cli.common import add_format_arguments, add_source_arguments, fail, load

EPILOG = """\
SOURCE is anything `compare` reads (a run directory, an MLflow store or mlflow://EXPERIMENT, a
TensorBoard log dir, a W&B offline directory). Without --step: the last sampled step of each run.

examples:
  rldk-track samples rldk_runs
  rldk-track samples rldk_runs/mlflow.db --step 40 --sort reward --limit 5

exit codes: 0 printed (also when there are no samples); 2 bad input.
"""

KEYS = ("run", "step", "name", "row")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("samples", help="print a run's sample rows (prompts, completions, rewards) at a step",
                       description="The sample rows a run recorded, one block per row.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(p, "where the runs are")
    p.add_argument("--step", type=int, help="the sampled step (default: each run's last)")
    p.add_argument("--name", help="only this sample set (e.g. completions)")
    p.add_argument("--sort", metavar="COLUMN", help="highest COLUMN first (e.g. reward)")
    p.add_argument("--limit", type=int, default=8, help="rows per run (default 8)")
    p.add_argument("--width", type=int, default=300, help="characters shown per cell (default 300)")
    add_format_arguments(p, what="the rows")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        samples = load(args).samples
    except (ValueError, KeyError, LookupError, FileNotFoundError) as exc:
        return fail(exc)
    if args.name:
        samples = samples[samples["name"] == args.name]
    if args.sort and args.sort not in samples.columns:
        return fail(ValueError(f"no column {args.sort!r}; columns: {', '.join(c for c in samples.columns if c not in KEYS)}"))
    out = []
    for run_name, rows in samples.groupby("run", sort=False):
        step = args.step if args.step is not None else int(rows["step"].max())
        rows = rows[rows["step"] == step]
        if args.sort:
            rows = rows.sort_values(args.sort, ascending=False, kind="stable", na_position="last")
        out.extend(rows.head(args.limit).to_dict("records"))
    if args.format == "json":
        print(json.dumps(out, indent=2, default=str, allow_nan=True))
        return 0
    if not out:
        print("no samples" + (f" at step {args.step}" if args.step is not None else ""))
        return 0
    for row in out:
        print(f"== {row['run']}  step {row['step']}  {row['name']}  row {row['row']}")
        for key, value in row.items():
            if key in KEYS or value is None or value != value:
                continue
            text = str(value)
            print(f"  {key}: {text if len(text) <= args.width else text[: args.width] + ' …'}")
    return 0
