"""Read-back speed from every tracker, and the cost of ``compare``.

1. One run of ``--metrics`` x ``--steps`` points (default 100 x 10,000 = 1M) is logged through
   rldk_track into a local MLflow server (started through ``backends/mlflow/serve_local.sh``),
   offline W&B and TensorBoard (+ the event log), and its event log is synced into an MLflow
   sqlite store too. Write time is printed but is not the subject.
2. The run is read back by each reader, in one process, timed; points/s reported. MLflow is read
   three ways side by side (``rldk_track.readers.mlflow`` ``fetch=``): ``bulk`` (the default),
   ``threads`` and ``client`` (``MlflowClient.get_metric_history`` one call after another, the
   plain public API), with the ratio to ``client``.
3. ``compare`` on ``--runs`` runs of the same size (20 x 1M = 20M points, built in memory: the
   point is compare's own cost): the default metrics, and every metric.

    python benchmarks/readback.py [--metrics 100] [--steps 10000] [--runs 20] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from mlflow_server import start_mlflow_server, stop_mlflow_server  # benchmarks/mlflow_server.py

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")


def values(step: int, metrics: int) -> dict[str, float]:
    return {f"group{i % 10}/metric_{i:03d}": ((step * 31 + i * 7) % 997) / 997.0 for i in range(metrics)}


def write_run(dir: Path, uri: str, metrics: int, steps: int) -> str:
    import rldk_track

    start = time.perf_counter()
    run = rldk_track.init(backend=["mlflow", "wandb", "tensorboard"], dir=dir, project="readback",
                          run_name="big", mlflow={"tracking_uri": uri}, config={"metrics": metrics, "steps": steps})
    for step in range(steps):
        run.log(values(step, metrics), step=step)
    logged = time.perf_counter() - start
    report = run.finish(timeout=3600)
    total = time.perf_counter() - start
    print(f"wrote {metrics * steps:,} points: log calls {logged:.1f} s, all trackers delivered after {total:.1f} s "
          f"({'complete' if report.complete else report.describe()})")
    return run.id


def sync_to_sqlite(dir: Path, run_id: str, target: Path) -> str:
    from rldk_track.sync import sync

    (target / "events").mkdir(parents=True)
    shutil.copy(dir / "events" / f"{run_id}.jsonl", target / "events")
    uri = f"sqlite:///{target / 'mlflow.db'}"
    start = time.perf_counter()
    results = sync(target, to=["mlflow"], options={"mlflow": {"tracking_uri": uri}}, timeout=3600)
    print(f"synced into {uri} in {time.perf_counter() - start:.1f} s: {results[0].delivered} records")
    return uri


def timed(label: str, read: Callable[[], object], points: int, repeat: int) -> float:
    best = float("inf")
    got = 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = read()
        best = min(best, time.perf_counter() - start)
        got = _points(result)
    print(f"  {label:<44} {best:8.2f} s  {points / best:>12,.0f} points/s   ({got:,} points)")
    if got != points:
        print(f"  !! {label} read {got:,} points, expected {points:,}")
    return best


def _points(result: object) -> int:
    if hasattr(result, "frame"):
        return len(result.frame)
    return sum(r.points for r in result)


def read_back(dir: Path, server_uri: str, sqlite_uri: str, points: int, repeat: int) -> None:
    from rldk_track.readers import load_runs
    from rldk_track.readers.eventlog import read_event_logs
    from rldk_track.readers.mlflow import read_mlflow
    from rldk_track.readers.tensorboard import read_tensorboard
    from rldk_track.readers.wandb import read_wandb_offline

    import mlflow  # noqa: F401  (imports are not what is timed)
    import tensorboard.backend.event_processing.event_accumulator  # noqa: F401
    import wandb.proto.wandb_internal_pb2  # noqa: F401

    print("\nread back (best of %d; imports done before):" % repeat)
    timed("event log (jsonl)", lambda: read_event_logs(dir), points, repeat)
    timed("event log -> RunSet (load_runs)", lambda: load_runs(dir, progress=False), points, repeat)
    for name, uri in (("server", server_uri), ("sqlite", sqlite_uri)):
        times = {fetch: timed(f"mlflow {name} fetch={fetch}", lambda f=fetch, u=uri: read_mlflow("readback", tracking_uri=u, fetch=f, progress=False), points, repeat)
                 for fetch in ("bulk", "threads", "client")}
        print(f"  -> mlflow {name}: bulk is {times['client'] / times['bulk']:.1f}x, threads "
              f"{times['client'] / times['threads']:.1f}x the speed of one get_metric_history call after another")
    timed("tensorboard (EventAccumulator, keep all)", lambda: read_tensorboard(dir / "tensorboard", progress=False), points, repeat)
    timed("wandb offline (.wandb run file)", lambda: read_wandb_offline(dir / "wandb", progress=False), points, repeat)


def compare_cost(runs: int, metrics: int, steps: int) -> None:
    import numpy as np
    import pandas as pd

    from rldk_track.compare import compare
    from rldk_track.compare.comparison import runset_from_frame

    rng = np.random.default_rng(0)
    n = metrics * steps
    names = [f"group{i % 10}/metric_{i:03d}" for i in range(metrics)]
    names[:4] = ["reward/mean", "kl/mean", "entropy/mean", "loss/total"]
    start = time.perf_counter()
    frame = pd.DataFrame({
        "run": pd.Categorical.from_codes(np.repeat(np.arange(runs), n), [f"run{r:02d}" for r in range(runs)]),
        "step": np.tile(np.repeat(np.arange(steps), metrics), runs),
        "metric": pd.Categorical.from_codes(np.tile(np.arange(metrics), steps * runs), names),
        "value": np.cumsum(rng.normal(0, 0.01, n * runs)) + np.repeat(np.linspace(0, 1, runs), n),
        "wall_time": np.tile(np.repeat(np.arange(steps, dtype=float), metrics), runs),
    })
    runset = runset_from_frame(frame)
    compare(runset.select(runs=["run00", "run01"], metrics=names[:2])).plot()  # imports, font cache
    print(f"\ncompare: {runs} runs x {n:,} points = {len(frame):,} points (built in memory in "
          f"{time.perf_counter() - start:.1f} s)")
    for label, chosen in (("4 metrics (the default set)", None), (f"all {metrics} metrics", names)):
        start = time.perf_counter()
        result = compare(runset, metrics=chosen)
        stats_s = time.perf_counter() - start
        start = time.perf_counter()
        result.plot() if chosen is None else None
        plot_s = time.perf_counter() - start
        print(f"  {label:<30} statistics {stats_s:6.2f} s ({len(result.summary)} run/metric summaries, "
              f"{len(result.tests)} tests)" + (f", plot {plot_s:.2f} s" if chosen is None else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20, help="runs for the compare timing")
    parser.add_argument("--repeat", type=int, default=1, help="read each tracker this many times (best is kept)")
    parser.add_argument("--skip-compare", action="store_true")
    args = parser.parse_args()
    points = args.metrics * args.steps
    with tempfile.TemporaryDirectory(prefix="rldk-readback-") as tmp:
        work = Path(tmp)
        proc, uri = start_mlflow_server(work)
        try:
            run_id = write_run(work / "runs", uri, args.metrics, args.steps)
            sqlite = sync_to_sqlite(work / "runs", run_id, work / "sqlite")
            read_back(work / "runs", uri, sqlite, points, args.repeat)
        finally:
            stop_mlflow_server(proc)
    if not args.skip_compare:
        compare_cost(args.runs, args.metrics, args.steps)


if __name__ == "__main__":
    main()
