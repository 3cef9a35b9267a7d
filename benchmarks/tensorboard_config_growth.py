"""TensorBoard event-file bytes for a run that calls ``log_params`` and ``set_tags`` many times.

Each of ``--calls`` (default 300, 1200, 3000) runs ``n`` ``log_params`` calls and ``n``
``set_tags`` calls of one new key each, then one metric and ``finish``, with the TensorBoard backend
only. Reported per build and ``n``: the bytes of the run's event files, the bytes of its event log
(what was logged) and their ratio, and the seconds from ``init`` to the end of ``finish``.
``--against DIR`` runs the same in another checkout (e.g. a worktree of an older commit) and puts
its rows next to this one's. Each run is a fresh child process; the builds alternate per ``n``.

    nice -n 19 python benchmarks/tensorboard_config_growth.py [--calls 300 1200 3000] [--against DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def child(calls: int, workdir: Path) -> dict[str, float]:
    """One run in this (child) process; its sizes and time."""
    import rldk_track

    start = time.perf_counter()
    run = rldk_track.init(backend=["tensorboard"], dir=workdir, run_name="many", config={"lr": 1e-5})
    for i in range(calls):
        run.log_params({"sweep": {f"k{i:05d}": i}})
        run.set_tags({f"t{i:05d}": "x"})
    run.log({"x": 1.0}, step=0)
    complete = run.finish(timeout=3600).complete
    seconds = time.perf_counter() - start
    run_dir = workdir / "tensorboard" / "many"
    return {
        "event_files": sum(p.stat().st_size for p in run_dir.glob("events.out.tfevents.*")),
        "event_log": sum(p.stat().st_size for p in (workdir / "events").glob("*.jsonl")),
        "seconds": seconds,
        "complete": complete,
    }


def measure(checkout: Path, calls: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="tb-config-growth-"))
    try:
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        out = subprocess.run([sys.executable, __file__, "--child", str(calls), str(workdir)], env=env,
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[300, 1200, 3000])
    parser.add_argument("--against", type=Path, help="another checkout to measure next to this one")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), Path(args.child[1]))))
        return
    builds = [("this", HERE)] + ([("against", args.against.resolve())] if args.against else [])
    print("| build | calls | event files | event log | ratio | init→finish |")
    print("|---|---:|---:|---:|---:|---:|")
    for calls in args.calls:
        for label, checkout in builds:
            r = measure(checkout, calls)
            print(f"| {label} | {calls:,} | {r['event_files'] / 1e6:.2f} MB | {r['event_log'] / 1e6:.2f} MB | "
                  f"{r['event_files'] / r['event_log']:.1f}× | {r['seconds']:.1f} s{'' if r['complete'] else ' (incomplete)'} |",
                  flush=True)


if __name__ == "__main__":
    main()
