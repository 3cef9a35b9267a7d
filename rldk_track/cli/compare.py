"""``rldk-track compare SOURCE...``: the same comparison whichever trackers the runs are in."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rldk_track.cli.common import add_format_arguments, add_output_argument, add_source_arguments, fail, load, write_output

if TYPE_CHECKING:
    from rldk_track.compare.comparison import Comparison
    from rldk_track.readers.runset import RunSet

EPILOG = """\
sources:
  ./rldk_runs  run.jsonl            rldk_track event logs (or a seed Event JSONL file)
  mlflow://EXPERIMENT[/RUN]         MLflow (MLFLOW_TRACKING_URI or --tracking-uri; server or sqlite)
  path/to/mlflow.db                 every run in an MLflow sqlite store
  tensorboard://LOGDIR  or LOGDIR   every TensorBoard run under a log dir
  ./rldk_runs/wandb                 W&B offline runs (offline-run-*)
  wandb://ENTITY/PROJECT[/RUN]      W&B online (needs an API key)

examples:
  rldk-track compare ./rldk_runs --metric reward/mean --metric kl/mean
  rldk-track compare mlflow://rlhf/baseline mlflow://rlhf/lr-3e-6 --last 50 --plot curves.png
  rldk-track compare ./rldk_runs --format html --output report.html

verdicts: a difference is claimed only when both final windows have at least 5 effective
(autocorrelation-adjusted) points and Welch's t-test (on those) and Mann-Whitney U agree at
--alpha; otherwise "no clear difference" or "too few independent points to tell".

exit codes: 0 compared; 1 compared, but a metric is missing from some run (or --attach
            failed); 2 bad input (unknown source, run, metric or option).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="compare runs from any tracker: final-window stats, tests against a baseline, plots",
        description="Read runs from event logs, MLflow, TensorBoard or W&B and compare them metric by "
        "metric: final-window mean with a bootstrap CI, best value and step, area under the curve, "
        "steps to a threshold, alerts, and a verdict against the baseline run.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_arguments(p, "where the runs are (see below)")
    p.add_argument("-m", "--metric", action="append", metavar="NAME",
                   help="metric to compare (repeatable; default: reward/mean, kl/mean, entropy/mean, ... when present)")
    p.add_argument("-b", "--baseline", metavar="RUN", help="run the others are tested against (default: the first)")
    p.add_argument("--last", default="20%", metavar="N|P%",
                   help="final window: a share of each curve's points (20%%, the default) or a number of points")
    p.add_argument("--x", choices=("step", "wall_time", "tokens"), default="step",
                   help="axis for the area under the curve and reaching thresholds (default: step)")
    p.add_argument("--smooth", type=float, default=0.6, metavar="W",
                   help="EMA weight in [0, 1) for plots and thresholds, as TensorBoard's slider (default 0.6)")
    p.add_argument("--threshold", action="append", default=[], metavar="METRIC=VALUE",
                   help="report the first x where the smoothed METRIC reaches VALUE (repeatable)")
    p.add_argument("--minimize", action="append", default=[], metavar="METRIC",
                   help="METRIC is better lower (default: losses, KL, grad norms, timings, clipping)")
    p.add_argument("--maximize", action="append", default=[], metavar="METRIC", help="METRIC is better higher")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the verdicts (default 0.05)")
    p.add_argument("--plot", metavar="PNG", help="write the curves (one panel per metric, alerts marked) to this PNG")
    add_format_arguments(p, ("table", "text", "markdown", "json", "html"), "the comparison (text: the same as table)")
    add_output_argument(p)
    p.add_argument("--attach", metavar="RUN",
                   help="also attach the HTML report to RUN (one of the compared runs) as rldk/compare.html, "
                   "in the tracker it was read from (an event log: appended and synced to its trackers)")
    p.set_defaults(func=run)


def parse_thresholds(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        metric, sep, value = item.rpartition("=")
        if not sep or not metric:
            raise ValueError(f"--threshold {item!r}: use METRIC=VALUE, e.g. reward/mean=0.8")
        try:
            out[metric] = float(value)
        except ValueError:
            raise ValueError(f"--threshold {item!r}: {value!r} is not a number") from None
    return out


def _attach(result: "Comparison", runset: "RunSet", name: str) -> bool:
    """Attach the HTML report to run ``name`` where it lives; False (and why) if it cannot."""
    import time

    from rldk_track.posthoc import WriteBackError, write_back
    from rldk_track.records import Artifact

    if name not in runset.runs.index:
        print(f"rldk-track: --attach {name!r} is not among the runs: {', '.join(runset.runs.index)}", file=sys.stderr)
        return False
    report = Artifact(-1, time.time(), "rldk/compare.html", data=result.to_html().encode("utf-8"))
    try:
        done = write_back(runset.runs.loc[name].to_dict(), [report])
    except (WriteBackError, OSError) as exc:
        print(f"rldk-track: report not attached: {exc}", file=sys.stderr)
        return False
    synced = f"; synced: {', '.join(done.synced)}" if done.synced else ""
    print(f"report attached to {name} in {done.where} as rldk/compare.html{synced}", file=sys.stderr)
    return True


def run(args: argparse.Namespace) -> int:
    try:
        thresholds = parse_thresholds(args.threshold)
        goals = {**{m: "min" for m in args.minimize}, **{m: "max" for m in args.maximize}}
        runset = load(args)
        from rldk_track.compare import compare

        result = compare(runset, metrics=args.metric, baseline=args.baseline, last=args.last, x=args.x,
                         smoothing=args.smooth, thresholds=thresholds, goals=goals, alpha=args.alpha)
    except (ValueError, KeyError, LookupError, FileNotFoundError) as exc:
        return fail(exc)
    if args.plot:
        result.plot(args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    text = {
        "table": result.to_text,
        "text": result.to_text,
        "markdown": result.to_markdown,
        "json": result.to_json,
        "html": result.to_html,
    }[args.format]()
    write_output(text, args.output)
    if args.attach and not _attach(result, runset, args.attach):
        return 1
    missing = result.missing()
    if missing:
        print(f"note: {len(missing)} run/metric pairs have no points: "
              + ", ".join(f"{m} in {r}" for r, m in missing[:10]), file=sys.stderr)
        return 1
    return 0
