"""What the default analyzers cost, measured side by side in one process.

1. Per rule: CPU microseconds per metrics record, feeding each rule directly (this is log-thread
   work; ``time.thread_time`` so other processes on a shared machine do not inflate it).
2. Through a real run: ``rldk_track.init(analyzers=None)`` vs ``analyzers="default"`` (JSONL event
   log only), alternating, so both see the same machine load. Reported: time spent in ``run.log``
   on the training thread (the analyzers must not add to it), and time until ``finish()`` returns
   (the log thread's total work, analyzers included).

The records look like TRL GRPO's ``on_log`` after the callback adds canonical names (~47 keys).

``--against DIR`` also loads the rules of the rldk_track checkout in ``DIR`` (e.g. ``git worktree
add /tmp/base main``) into this process and measures both sets per rule, alternating, so machine
load hits them alike; the ratio is what to read on a shared machine.

    python benchmarks/analyzers_overhead.py [--steps 3000] [--repeats 5] [--against DIR] [--rules-only] [--block N]
"""

from __future__ import annotations

import argparse
import importlib
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import rldk_track
from rldk_track.analyzers import build_observers
from rldk_track.keymaps import canonicalize


def grpo_like_records(steps: int, seed: int = 0) -> list[dict[str, float]]:
    """Healthy GRPO-shaped logs under TRL's names plus their canonical names."""
    rng = random.Random(seed)
    records = []
    for t in range(steps):
        progress = t / steps
        reward = 0.2 + 0.5 / (1 + math.exp(-(progress - 0.4) / 0.12)) + rng.gauss(0, 0.04)
        raw = {
            "loss": rng.gauss(0, 0.02), "grad_norm": 0.8 * rng.lognormvariate(0, 0.35), "learning_rate": 1e-6,
            "num_tokens": 4096.0 * (t + 1), "reward": reward, "reward_std": 0.3 + rng.gauss(0, 0.03),
            "frac_reward_zero_std": 0.2 + rng.gauss(0, 0.05), "kl": 0.03 * (1 - math.exp(-(t + 1) / 60)) * rng.lognormvariate(0, 0.3),
            "entropy": 1.2 * (1 - 0.25 * progress) * rng.lognormvariate(0, 0.04),
            "clip_ratio/region_mean": abs(rng.gauss(0.03, 0.015)), "clip_ratio/low_mean": 0.01, "clip_ratio/high_mean": 0.01,
            "clip_ratio/low_min": 0.0, "clip_ratio/high_max": 0.05,
            "completions/mean_length": 120 + rng.gauss(0, 6), "completions/min_length": 40.0, "completions/max_length": 256.0,
            "completions/clipped_ratio": 0.05, "completions/mean_terminated_length": 110.0,
            "rewards/format/mean": min(1.0, 0.3 + 0.6 * progress + rng.gauss(0, 0.05)), "rewards/format/std": 0.3,
            "rewards/correct/mean": 0.1 + 0.4 * progress + rng.gauss(0, 0.05), "rewards/correct/std": 0.4,
            "epoch": progress,
        }
        records.append(canonicalize(raw, "trl"))
    return records


def per_rule(records: list[dict[str, float]], *builds: Callable[[str], list[Any]],
             block: int = 100, swap: bool = False) -> list[dict[str, float]]:
    """CPU microseconds per record for each default rule, fed directly (``finish`` included), for
    each rule set in ``builds`` (default: this checkout's). The sets take turns every ``block``
    records, rule by rule, so a change of machine load hits them alike; which set goes first
    alternates from turn to turn, starting with the last one if ``swap`` (the first meets the
    records cold in the cache: with this checkout always first, the same rules measured 1.07
    against themselves at ``block=100``; alternating, 1.01)."""
    rule_sets = [{rule.name: rule for rule in build("default")} for build in builds or (build_observers,)]
    spent: list[dict[str, float]] = [dict.fromkeys(rules, 0.0) for rules in rule_sets]
    clock = time.thread_time
    pairs = list(zip(rule_sets, spent))
    turn = int(swap)
    for first in range(0, len(records), block):
        chunk = list(enumerate(records[first:first + block], start=first))
        for name in rule_sets[0]:
            turn += 1
            for rules, costs in pairs[::-1] if turn % 2 == 0 else pairs:
                rule = rules.get(name)
                if rule is None:
                    continue
                start = clock()
                for step, values in chunk:
                    rule.update(step, values)
                costs[name] += clock() - start
    for rules, costs in zip(rule_sets, spent):
        for name, rule in rules.items():
            start = clock()
            rule.finish()
            costs[name] += clock() - start
    return [{name: s / len(records) * 1e6 for name, s in costs.items()} for costs in spent]


def rules_of(checkout: str) -> Callable[[str], list[Any]]:
    """``build_observers`` of the rldk_track package in another checkout, imported into this
    process beside the one under test (its modules are set aside again once it is loaded)."""
    ours = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "rldk_track"}
    for name in ours:
        del sys.modules[name]
    sys.path.insert(0, checkout)
    try:
        analyzers = importlib.import_module("rldk_track.analyzers")
    finally:
        sys.path.remove(checkout)
        for name in [n for n in sys.modules if n.split(".")[0] == "rldk_track"]:
            del sys.modules[name]
        sys.modules.update(ours)
    if not Path(analyzers.__file__).resolve().is_relative_to(Path(checkout).resolve()):
        raise SystemExit(f"--against {checkout}: imported {analyzers.__file__} instead")
    return analyzers.build_observers


def through_run(records: list[dict[str, float]], analyzers: str | None) -> tuple[float, float]:
    """(seconds in run.log on this thread, seconds until finish() returned)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run = rldk_track.init(dir=tmp, analyzers=analyzers)
        logging_s = 0.0
        for step, values in enumerate(records):
            t0 = time.perf_counter()
            run.log(values, step=step)
            logging_s += time.perf_counter() - t0
        run.finish()
        return logging_s, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--against", metavar="DIR", help="also measure the rules of the rldk_track checkout in DIR")
    parser.add_argument("--rules-only", action="store_true", help="skip the through-a-run part")
    parser.add_argument("--block", type=int, default=100,
                        help="records each rule takes in one turn (the whole stream: each rule alone, cache-warm)")
    args = parser.parse_args()
    records = grpo_like_records(args.steps)
    print(f"{args.steps} records of {len(records[0])} keys; median of {args.repeats} repeats\n")

    builds = [build_observers] + ([rules_of(args.against)] if args.against else [])
    runs = [per_rule(records, *builds, block=args.block, swap=bool(i % 2)) for i in range(args.repeats)]
    costs = [run[0] for run in runs]
    print("per rule, fed directly (CPU time, log thread)" + (f"; this checkout vs {args.against}:" if args.against else ":"))
    total = other_total = 0.0
    for name in costs[0]:
        us = statistics.median(c[name] for c in costs)
        total += us
        if not args.against:
            print(f"  {name:22s} {us:8.1f} us/record")
            continue
        other = statistics.median(run[1][name] for run in runs) if name in runs[0][1] else math.nan
        other_total += other if other == other else 0.0
        print(f"  {name:22s} {us:8.1f} vs {other:8.1f} us/record (ratio {us / other:.2f})")
    if not args.against:
        print(f"  {'all default rules':22s} {total:8.1f} us/record\n")
    else:
        print(f"  {'all default rules':22s} {total:8.1f} vs {other_total:8.1f} us/record (ratio {total / other_total:.2f})\n")
    if args.rules_only:
        return

    timings: dict[str | None, list[tuple[float, float]]] = {None: [], "default": []}
    for _ in range(args.repeats):
        for analyzers in (None, "default"):  # alternate, so both see the same load
            timings[analyzers].append(through_run(records, analyzers))
    log_none = statistics.median(t[0] for t in timings[None]) / args.steps * 1e6
    log_default = statistics.median(t[0] for t in timings["default"]) / args.steps * 1e6
    total_none = statistics.median(t[1] for t in timings[None])
    total_default = statistics.median(t[1] for t in timings["default"])
    print("through a run (jsonl event log):")
    print(f"  run.log on the training thread: {log_none:6.1f} us/step without analyzers, "
          f"{log_default:6.1f} with default analyzers (ratio {log_default / log_none:.2f})")
    print(f"  init .. finish() returned:      {total_none:6.3f} s without analyzers, "
          f"{total_default:6.3f} s with default analyzers (ratio {total_default / total_none:.2f})")


if __name__ == "__main__":
    main()
