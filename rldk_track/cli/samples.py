"""``rldk-track samples SOURCE [--step N] [--sort reward] [--alert RULE]``: a run's sample rows in the
terminal, or the evidence rows of a rule's alerts."""

from __future__ import annotations

import argparse
import json
import numbers
from typing import TYPE_CHECKING

from rldk_track.cli.common import add_format_arguments, add_source_arguments, fail, load

if TYPE_CHECKING:
    import pandas as pd

EPILOG = """\
SOURCE is anything `compare` reads (a run directory, an MLflow store or mlflow://EXPERIMENT, a
TensorBoard log dir, a W&B offline directory). Without --step: the last sampled step of each run.
With --alert RULE: the evidence rows of each alert of RULE (or of RULE/<subject>) that has some,
with its step and severity (--step: only the alerts at that step). The text output shows numbers
to 6 significant digits (a float32 reward 17.9, not 17.899999618530273); --json keeps them exact.

examples:
  rldk-track samples rldk_runs
  rldk-track samples rldk_runs/mlflow.db --step 40 --sort reward --limit 5
  rldk-track samples rldk_runs --alert truncation

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
    p.add_argument("--alert", metavar="RULE", help="the evidence rows of RULE's alerts instead (e.g. truncation)")
    add_format_arguments(p, what="the rows")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        runset = load(args)
    except (ValueError, KeyError, LookupError, FileNotFoundError) as exc:
        return fail(exc)
    if args.alert:
        return _evidence(runset.alerts, args)
    samples = runset.samples
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
        _cells(row, KEYS, args.width)
    return 0


def _evidence(alerts: "pd.DataFrame", args: argparse.Namespace) -> int:
    """Print the evidence of the alerts of rule ``args.alert`` (or its subjects)."""
    rule = alerts["rule"].astype(str)
    chosen = alerts[((rule == args.alert) | rule.str.startswith(f"{args.alert}/")) & alerts["evidence"].notna()]
    if args.step is not None:
        chosen = chosen[chosen["step"] == args.step]
    out = [{"run": a["run"], "rule": a["rule"], "step": a["step"], "severity": a["severity"], "message": a["message"],
            "evidence": {**a["evidence"], "rows": [dict(zip(a["evidence"]["columns"], r))
                                                   for r in a["evidence"]["rows"][: args.limit]]}}
           for a in chosen.to_dict("records")]
    if args.format == "json":
        print(json.dumps(out, indent=2, default=str, allow_nan=True))
        return 0
    if not out:
        print(f"no evidence on alerts of {args.alert}" + (f" at step {args.step}" if args.step is not None else ""))
        return 0
    for alert in out:
        evidence = alert["evidence"]
        print(f"== {alert['run']}  {alert['rule']}  step {alert['step']}  {alert['severity']}: {alert['message']}")
        print(f"   rows of samples {evidence['name']!r} at step {evidence['step']}, {evidence['by']} first")
        for row in evidence["rows"]:
            print(f"  -- row {row.get('row')}")
            _cells(row, ("row",), args.width, indent="    ")
    return 0


def _cells(row: dict, skip: tuple[str, ...], width: int, indent: str = "  ") -> None:
    for key, value in row.items():
        if key in skip or value is None or value != value:
            continue
        text = shown(value)
        print(f"{indent}{key}: {text if len(text) <= width else text[: width] + ' …'}")


def shown(value: object) -> str:
    """A cell as the text output shows it: a float to 6 significant digits (a float32 reward 17.9
    is 17.9, not 17.899999618530273; ``--json`` keeps the exact value), anything else as ``str``."""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return f"{value:.6g}"
    return str(value)
