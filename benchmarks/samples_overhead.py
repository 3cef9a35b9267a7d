"""Training-thread cost of ``run.log_samples`` (64 rows), next to ``run.log`` of a 50-metric step,
and the event log's growth per step with samples on at the default limits.

One run (event log + TensorBoard, both local) takes every contender; their calls are interleaved
step by step so machine noise hits them alike. Reported: p50 / p99 of the time the training thread
spends inside each call. The rows look like a GRPO batch: a 200-character prompt, an
800-character completion, a reward and an advantage.

    python benchmarks/samples_overhead.py [--steps 2000] [--size-steps 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

ROWS = 64
N_METRICS = 50


def rows(step: int) -> list[dict[str, object]]:
    return [{"prompt": f"{step}:{i} " + "p" * 200, "completion": "c" * 800, "reward": (i % 7) / 7, "advantage": i / 64 - 0.5}
            for i in range(ROWS)]


def percentile(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="timed calls per contender")
    parser.add_argument("--size-steps", type=int, default=200, help="steps for the event-log size figure")
    args = parser.parse_args()
    import pandas as pd

    import rldk_track

    workdir = Path(tempfile.mkdtemp(prefix="rldk-samples-bench-"))
    try:
        run = rldk_track.init(backend=["jsonl", "tensorboard"], dir=workdir / "timed", project="bench")
        values = {f"metric_{i:02d}": i / 97 for i in range(N_METRICS)}
        batches = [rows(step) for step in range(16)]
        frames = [pd.DataFrame(batch) for batch in batches[:4]]
        columns = [{key: [row[key] for row in batch] for key in batch[0]} for batch in batches]
        timings: dict[str, list[int]] = {"run.log (50 metrics)": [], "log_samples (64 row dicts)": [],
                                         "log_samples (64-row column dict)": [], "log_samples (64-row DataFrame)": []}
        clock = time.perf_counter_ns
        for step in range(args.steps):
            t0 = clock()
            run.log(values, step=step)
            t1 = clock()
            run.log_samples(batches[step % 16], step=step)
            t2 = clock()
            run.log_samples(columns[step % 16], step=step, name="columns")
            t3 = clock()
            run.log_samples(frames[step % 4], step=step, name="frame")
            t4 = clock()
            for name, spent in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                timings[name].append(spent)
            if step % 100 == 99:
                run.flush(120)  # keep the queue short: the figure is the call, not a growing backlog
        run.finish(timeout=300)
        base = percentile(timings["run.log (50 metrics)"], 0.5)
        print(f"{'call':36} {'p50 us':>8} {'p99 us':>8} {'p50 / run.log':>14}")
        for name, spent in timings.items():
            p50, p99 = percentile(spent, 0.5), percentile(spent, 0.99)
            print(f"{name:36} {p50:8.1f} {p99:8.1f} {p50 / base:14.1f}")

        sizes = {}
        for label, with_samples in (("metrics only", False), ("metrics + 64-row samples", True)):
            sized = rldk_track.init(dir=workdir / label.replace(" ", "_"), project="bench")
            for step in range(args.size_steps):
                sized.log(values, step=step)
                if with_samples:
                    sized.log_samples(batches[step % 16], step=step, name="completions")
            sized.finish(timeout=300)
            sizes[label] = (sized.dir / "events" / f"{sized.id}.jsonl").stat().st_size / args.size_steps
        print(f"\nevent-log bytes per step over {args.size_steps} steps (default SampleLimits: "
              f"64 rows, 4000 characters a cell, every step)")
        for label, per_step in sizes.items():
            print(f"{label:28} {per_step:10.0f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("RLDK_TRACK_DIR", tempfile.gettempdir())
    main()
