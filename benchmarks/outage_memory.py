"""Peak memory of a run whose tracker is unreachable for the whole run, next to one with nothing behind.

Logs ``--records`` 50-metric steps (default 200k: 10 M points) as fast as the loop can, once with
MLflow pointed at a loopback port nothing listens on (its worker never connects, so every record
is "behind") and once with only the event log (nothing behind). Each contender runs in a fresh
child process of this one command, alternating for ``--rounds`` rounds, so neither inherits the
other's heap. Reported per contender: RSS growth (peak ``ru_maxrss`` minus RSS after imports,
before ``init``), the most bytes the MLflow worker's in-memory queue held (its estimate), the most
records waiting for the log thread, and the records in the event log (all of them: ``finish``
waits for the log).

    nice -n 19 python benchmarks/outage_memory.py [--records 200000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow_server import free_port  # benchmarks/mlflow_server.py

N_METRICS = 50
CONTENDERS = ("nothing-behind", "mlflow-unreachable")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(contender: str, records: int, workdir: Path) -> dict[str, object]:
    """One contender, in this (child) process: log ``records`` steps, finish, measure."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import mlflow  # noqa: F401  imported in both, before the baseline, so neither pays for it

    import rldk_track

    names = [f"metric_{i:02d}" for i in range(N_METRICS)]
    backend = ["mlflow"] if contender == "mlflow-unreachable" else ["jsonl"]
    options = {"mlflow": {"tracking_uri": f"http://127.0.0.1:{free_port()}"}} if backend == ["mlflow"] else None
    baseline = rss_bytes()
    run = rldk_track.init(backend=backend, dir=workdir, project="outage", options=options)
    dispatcher = run._dispatcher
    queued = 0  # the most records waiting for the log thread (sampled every 1000 steps)
    start = time.perf_counter()
    for step in range(records):
        run.log({name: (step * 31 + i) % 97 / 97.0 for i, name in enumerate(names)}, step=step)
        if step % 1000 == 0:
            queued = max(queued, dispatcher._queue.qsize())
    log_s = time.perf_counter() - start
    report = run.finish(timeout=600)  # returns once the log is written; an unreachable tracker gets 5 s
    finish_s = time.perf_counter() - start - log_s
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open(run.event_log, "rb") as log:
        lines = sum(1 for _ in log)
    return {
        "contender": contender,
        "rss_growth_mb": (peak - baseline) / 2**20,
        # 0 on a build without a byte count (before the bound)
        "queue_peak_mb": max((getattr(w, "peak_pending_bytes", 0) for w in dispatcher.workers), default=0) / 2**20,
        "log_queue_peak": queued,
        "event_log_lines": lines,
        "pending_at_finish": dict(report.pending),
        "log_s": log_s,
        "finish_s": finish_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="50-metric steps per contender")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each contender, alternating")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.records, Path(args.workdir))))
        return

    results: dict[str, list[dict[str, object]]] = {c: [] for c in CONTENDERS}
    for _ in range(args.rounds):
        for contender in CONTENDERS:
            workdir = Path(tempfile.mkdtemp(prefix="rldk-outage-"))
            try:
                done = subprocess.run(
                    [sys.executable, __file__, "--child", contender, "--records", str(args.records),
                     "--workdir", str(workdir)], capture_output=True, text=True, check=True)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            results[contender].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{args.records} records x {N_METRICS} metrics = {args.records * N_METRICS / 1e6:g} M points per run, "
          f"{os.environ.get('RLDK_MAX_PENDING_MB', 'default')} MB bound (RLDK_MAX_PENDING_MB)")
    print("| contender | RSS growth (MB) | MLflow worker queue peak (MB, estimate) | records queued for the log "
          "thread, peak | event-log lines | logging s | finish s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for contender, runs in results.items():
        for r in runs:
            print(f"| {contender} | {r['rss_growth_mb']:.0f} | {r['queue_peak_mb']:.1f} | {r['log_queue_peak']} "
                  f"| {r['event_log_lines']} | {r['log_s']:.1f} | {r['finish_s']:.1f} |")


if __name__ == "__main__":
    main()
