"""``rldk-track merge DIR``: per-rank event logs of a distributed run, side by side."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from rldk_track.cli.common import add_format_arguments, write_frame


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge",
        help="line up per-rank event logs (per_rank=True): spread across ranks, stragglers, memory imbalance",
        description="Reads <run_id>.jsonl and <run_id>.rank<k>.jsonl under DIR and shows, per metric, "
        "the min/mean/max over ranks and the rank that is most often highest (the slowest rank for "
        "perf/step_s, the heaviest for memory).",
    )
    p.add_argument("source", help="run directory (e.g. ./rldk_runs) or one event log .jsonl")
    p.add_argument("--run", help="run id (default: every run with more than one rank)")
    p.add_argument("--metric", action="append", help="only this metric (repeatable)")
    p.add_argument("--top", type=int, default=20, help="metrics to show per run, most uneven first (default 20)")
    p.add_argument("-o", "--output", "--out", dest="output", metavar="FILE", help="write the per-step frame (run_id, step, metric, ranks, min, mean, max, "
                   "spread, imbalance, min_rank, max_rank) to .csv, .parquet or .jsonl")
    add_format_arguments(p, what="the per-metric summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rldk_track.merge import rank_logs, rank_spread, rank_summary, read_ranks

    runs = {rid: logs for rid, logs in rank_logs(args.source, args.run).items() if args.run or len(logs) > 1}
    if not runs:
        print(f"no per-rank event logs under {args.source} (start the run with per_rank=True)")
        return 2
    frame = read_ranks(args.source, args.run, args.metric)
    frame = frame[frame["run_id"].isin(runs)]
    spread = rank_spread(frame)
    summary = rank_summary(spread)
    if args.output:
        write_frame(spread, Path(args.output))
    if args.format == "json":
        print(json.dumps(summary.to_dict(orient="records"), indent=2, default=str))
        return 0
    for run_id, logs in runs.items():
        hosts = sorted({log.host for log in logs if log.host})
        print(f"run {run_id}: ranks {', '.join(str(log.rank) for log in logs)} on {', '.join(hosts) or 'unknown host'}")
        rows = summary[summary["run_id"] == run_id].head(args.top)
        if rows.empty:
            print("  no metric was reported by more than one rank at the same step")
            continue
        print(f"  {'metric':<36} {'steps':>5} {'min':>11} {'mean':>11} {'max':>11} {'max-min':>11}  highest rank")
        for row in rows.itertuples():
            who = "all equal" if row.highest_rank < 0 else f"rank {row.highest_rank} ({row.highest_share:.0%} of steps)"
            print(f"  {row.metric:<36} {row.steps:>5} {_num(row.min):>11} {_num(row.mean):>11} {_num(row.max):>11} "
                  f"{_num(row.mean_spread):>11}  {who}")
    if args.output:
        print(f"per-step frame written to {args.output}")
    return 0


def _num(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"

