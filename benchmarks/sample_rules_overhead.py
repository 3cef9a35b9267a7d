"""What the sample-set rules and the evidence on alerts cost on the log thread, side by side.

1. Per sample set: CPU microseconds to show one 64-row ``Samples`` record (TRL-GRPO-shaped:
   prompt, completion of ~100 words, reward, two reward functions, advantage) to each of the three
   sample rules, and to a metric rule (which only remembers it for evidence).
2. Per metrics record: CPU microseconds of ``observe([metrics])`` for every default rule, with
   the sample rules and without them (the three are turned off), alternating, so the cost the
   sample rules add to a run that logs no samples is a ratio on the same machine load.
3. Per raised alert: CPU microseconds to pick its evidence rows from a 64-row set.

    python benchmarks/sample_rules_overhead.py [--sets 300] [--records 3000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from rldk_track.analyzers import DegenerateOutputs, LengthHacking, RewardOutliers, Truncation, build_observers
from rldk_track.analyzers.evidence import SampleMemory
from rldk_track.records import Alert, Metrics, Samples

WORDS = "the a model answer step so then we add two four because it is and of to in that".split()
COLUMNS = ("prompt", "completion", "reward", "reward/format", "reward/correct", "advantage")
SAMPLE_RULES = ("length_hacking", "degenerate_outputs", "reward_outliers")


def sample_sets(count: int, rows: int = 64, seed: int = 0) -> list[Samples]:
    rng = random.Random(seed)
    out = []
    for step in range(count):
        table = []
        for i in range(rows):
            completion = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 160)))
            fmt, correct = rng.random(), float(rng.random() < 0.4)
            table.append((f"question {i // 8}", completion, fmt + correct, fmt, correct, rng.gauss(0, 1)))
        out.append(Samples(step, 0.0, step, COLUMNS, tuple(table), "completions"))
    return out


def per_set(sets: list[Samples]) -> dict[str, float]:
    out = {}
    for rule in (LengthHacking(), DegenerateOutputs(), RewardOutliers(), Truncation()):
        start = time.thread_time()
        for record in sets:
            rule.observe([record])
        out[rule.name] = (time.thread_time() - start) / len(sets) * 1e6
    return out


def per_metrics_record(records: int, repeats: int) -> tuple[float, float]:
    values = {"reward": 0.5, "kl": 0.02, "entropy": 1.1, "grad_norm": 0.8, "completions/clipped_ratio": 0.05,
              "completions/mean_length": 120.0, "rewards/format/mean": 0.6, "rewards/correct/mean": 0.3}
    batch = [Metrics(s, 0.0, s, dict(values, reward=0.5 + 0.001 * (s % 7))) for s in range(records)]
    with_rules, without = [], []
    for _ in range(repeats):
        for spec, results in (("default", with_rules), ({name: False for name in SAMPLE_RULES}, without)):
            observers = build_observers(spec)
            start = time.thread_time()
            for record in batch:
                for observer in observers:
                    observer.observe([record])
            results.append((time.thread_time() - start) / records * 1e6)
    return statistics.median(with_rules), statistics.median(without)


def per_alert(sets: list[Samples]) -> float:
    memory = SampleMemory()
    memory.see(sets[0])
    alerts = [Alert(-1, 0.0, 0, rule, "warning", "x") for rule in ("truncation", "entropy_collapse", "reward_hacking/kl_entropy")]
    start = time.thread_time()
    for _ in range(100):
        memory.attach(alerts)
    return (time.thread_time() - start) / (100 * len(alerts)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=int, default=300)
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sets = sample_sets(args.sets)
    print(f"per 64-row sample set, CPU µs ({args.sets} sets):")
    for name, cost in per_set(sets).items():
        print(f"  {name:20s} {cost:8.1f}")
    with_rules, without = per_metrics_record(args.records, args.repeats)
    print(f"per metrics record, all default rules, CPU µs: with the sample rules {with_rules:.1f}, "
          f"without {without:.1f} (ratio {with_rules / without:.3f})")
    print(f"per raised alert, picking its evidence from a 64-row set: {per_alert(sets):.1f} CPU µs")


if __name__ == "__main__":
    main()
