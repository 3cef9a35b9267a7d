"""Resident memory over a long run with samples on: does RSS stay flat?

Each contender runs in its own process (so one's memory never counts for another): a loop of
``--steps`` steps that logs 50 metrics and, with samples on, a 64-row sample set every step (the
rows of ``samples_overhead.py``: 200-character prompt, 800-character completion, reward,
advantage) into the event log + TensorBoard. ``--step-ms`` of sleep per step stands in for the
training step. The process's RSS (``/proc/self/statm``) is read every ``--every`` steps; with
``--drain`` each reading comes after ``run.flush()``, so it shows what the run keeps, not the
records still queued for a log thread that is behind (on a loaded machine it falls behind a loop
that does little else, and the queue then holds the backlog). Reported: RSS at the first and last
reading, the growth between them, the peak (``ru_maxrss``), the event log's size and the wall time.

    nice -n 19 python benchmarks/samples_rss.py [--steps 10000] [--step-ms 20] [--every 500] [--drain]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from samples_overhead import N_METRICS, rows  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / MB


def contender(samples: bool, steps: int, step_s: float, every: int, drain: bool, workdir: Path) -> dict[str, object]:
    """One run; its RSS readings and peak as a JSON-able dict."""
    import rldk_track

    run = rldk_track.init(backend=["jsonl", "tensorboard"], dir=workdir, project="bench", analyzers=None)
    values = {f"metric_{i:02d}": i / 97 for i in range(N_METRICS)}
    batches = [rows(step) for step in range(16)]
    readings: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    for step in range(steps):
        run.log(values, step=step)
        if samples:
            run.log_samples(batches[step % 16], step=step, name="completions")
        time.sleep(step_s)
        if step % every == every - 1:
            if drain:
                assert run.flush(timeout=600), "the log thread did not catch up in 600 s"
            readings.append((step + 1, round(rss_mb(), 1)))
    report = run.finish(timeout=600)
    wall = time.perf_counter() - t0
    readings.append((steps, round(rss_mb(), 1)))
    log_bytes = (run.dir / "events" / f"{run.id}.jsonl").stat().st_size
    return {"readings": readings, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "wall_s": wall, "complete": report.complete, "event_log_mb": log_bytes / MB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--step-ms", type=float, default=5.0, help="sleep per step (the training step)")
    parser.add_argument("--every", type=int, default=500, help="steps between RSS readings")
    parser.add_argument("--drain", action="store_true", help="flush before each RSS reading")
    parser.add_argument("--child", choices=["metrics", "samples"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        out = contender(args.child == "samples", args.steps, args.step_ms / 1000, args.every, args.drain, Path(args.dir))
        print(json.dumps(out))
        return

    workdir = Path(tempfile.mkdtemp(prefix="rldk-samples-rss-"))
    try:
        results = {}
        for label in ("metrics", "samples"):
            command = [sys.executable, __file__, "--child", label, "--steps", str(args.steps), "--step-ms",
                       str(args.step_ms), "--every", str(args.every), "--dir", str(workdir / label),
                       *(["--drain"] if args.drain else [])]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[label] = json.loads(done.stdout.strip().splitlines()[-1])
            shutil.rmtree(workdir / label, ignore_errors=True)
        print(f"{args.steps} steps, 50 metrics a step, {args.step_ms} ms sleep a step, event log + TensorBoard"
              + (", RSS read after run.flush()" if args.drain else ", RSS read without waiting for the log thread"))
        print(f"{'contender':30} {'RSS first':>10} {'RSS last':>9} {'growth':>7} {'peak':>7} {'log MB':>7} {'wall s':>7}")
        for label, name in (("metrics", "metrics only"), ("samples", "metrics + 64-row samples")):
            r = results[label]
            first, last = r["readings"][0][1], r["readings"][-1][1]
            print(f"{name:30} {first:10.1f} {last:9.1f} {last - first:7.1f} {r['peak_mb']:7.1f} "
                  f"{r['event_log_mb']:7.1f} {r['wall_s']:7.1f}" + ("" if r["complete"] else "  (incomplete)"))
        print("\nRSS (MB) by step:")
        print("step     " + " ".join(f"{s:>7}" for s, _ in results["samples"]["readings"]))
        for label in ("metrics", "samples"):
            print(f"{label:8} " + " ".join(f"{v:7.1f}" for _, v in results[label]["readings"]))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("RLDK_TRACK_DIR", tempfile.gettempdir())
    main()
