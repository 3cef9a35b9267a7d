"""``run.log`` with the bounded ``Dispatcher.submit`` (one ``qsize()`` call before the put) next to
the unbounded one (a plain put), in one process, interleaved in blocks of 10 calls so machine
noise hits both alike. 50 metrics a call, event log only. Reported: p50 / p99 of each.

    nice -n 19 python benchmarks/submit_bound_ab.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import rldk_track
from rldk_track.dispatch import Dispatcher


def unbounded_submit(self: Dispatcher, record: object) -> None:
    """``Dispatcher.submit`` as it was before the queue had a bound."""
    self._queue.put(record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per contender")
    args = parser.parse_args()
    bounded_submit = Dispatcher.submit
    run = rldk_track.init(backend=["jsonl"], dir=tempfile.mkdtemp(prefix="rldk-ab-"), project="ab")
    names = [f"metric_{i:02d}" for i in range(50)]
    samples: dict[str, list[int]] = {"bounded": [], "unbounded": []}
    contenders = [("bounded", bounded_submit), ("unbounded", unbounded_submit)]
    step = 0
    for block in range(args.calls // 10):
        for label, submit in contenders if block % 2 else contenders[::-1]:
            Dispatcher.submit = submit
            for _ in range(10):
                values = {n: (step * 31 + i) % 97 / 97.0 for i, n in enumerate(names)}
                start = time.perf_counter_ns()
                run.log(values, step=step)
                samples[label].append(time.perf_counter_ns() - start)
                step += 1
            time.sleep(0.002)  # let the log thread write, as between training steps
    Dispatcher.submit = bounded_submit
    run.finish()
    for label, times in samples.items():
        times.sort()
        print(f"{label:>9}: p50 {times[len(times) // 2] / 1000:.1f} µs  p99 {times[int(len(times) * 0.99)] / 1000:.1f} µs"
              f"  ({len(times)} calls)")


if __name__ == "__main__":
    main()
