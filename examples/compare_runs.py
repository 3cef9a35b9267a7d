"""Read runs back from the trackers and compare them: ``load_runs`` and ``compare``.

Records two runs of the bandit loop of ``plain_loop.py`` (a cautious and an aggressive learning
rate) into one run directory, reads them back as pandas frames, and compares them metric by
metric against the cautious one (final-window means with confidence intervals, Welch and
Mann-Whitney tests, a verdict), as ``rldk-track compare`` does.

    python examples/compare_runs.py                       # records into ./rldk_runs, then compares
    python examples/compare_runs.py mlflow://rlhf ./rldk_runs/tensorboard --baseline bandit-lr0.05

Any source ``load_runs`` reads works: event logs, ``mlflow://EXPERIMENT``, a TensorBoard log dir,
W&B offline runs (see docs/compare.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import rldk_track
from plain_loop import train  # the example next to this one

METRICS = ["reward/mean", "kl/mean", "entropy/mean"]


def record_two_runs(dir: str | Path, steps: int = 60) -> list[str]:
    """Two bandit runs differing only in learning rate; their names."""
    names = []
    for lr in (0.05, 0.5):
        name = f"bandit-lr{lr:g}"
        train(steps=steps, lr=lr, run_name=name, dir=dir)
        names.append(name)
    return names


def compare_sources(sources: str | Sequence[str], baseline: str | None = None, plot: str | Path | None = None) -> Any:
    """Load every run in ``sources`` and compare them against ``baseline`` (default: the first)."""
    runs = rldk_track.load_runs(sources)
    frame, table = runs  # one row per point; one row per run
    print(table[["status", "health", "alerts", "steps"]].to_string(), "\n")
    print(runs.wide("reward/mean").tail(3).to_string(), "\n")  # step x run
    result = rldk_track.compare(runs, metrics=[m for m in METRICS if m in runs.metric_names], baseline=baseline)
    print(result.to_text())
    if plot:
        result.plot(plot)
    return result


def main(argv: Sequence[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", help="what to read (default: record two runs into --dir first)")
    parser.add_argument("--dir", default="rldk_runs", help="where the two example runs go")
    parser.add_argument("--baseline", help="run name to compare against")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--plot", help="write the curves to this PNG")
    args = parser.parse_args(argv)
    if args.sources:
        return compare_sources(args.sources, args.baseline, args.plot)
    baseline, _ = record_two_runs(args.dir, steps=args.steps)
    return compare_sources(args.dir, args.baseline or baseline, args.plot)


if __name__ == "__main__":
    main()
