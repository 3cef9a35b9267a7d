"""Every verdict of the default rules, written out to compare two checkouts byte for byte.

Replays each stream of the insight corpus (``insight/corpus.py``: real runs, injected faults and
the stress streams) at logging_steps 1, 5 and 10, and three of ``analyzers_overhead.py``'s
1000-record streams, through fresh ``build_observers("default")`` rules of the rldk_track that is
imported (set ``PYTHONPATH`` to the checkout under test), and writes one JSON line per alert (all
fields) and per end-of-run record (wall time left out). A change meant to make the rules cheaper
must leave this output identical:

    PYTHONPATH=/tmp/base python benchmarks/analyzers_verdicts.py /tmp/before.jsonl
    PYTHONPATH=.         python benchmarks/analyzers_verdicts.py /tmp/after.jsonl
    cmp /tmp/before.jsonl /tmp/after.jsonl
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import IO, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent / "insight"))
from analyzers_overhead import grpo_like_records  # noqa: E402
from corpus import RATES, STRESS, all_streams, at_rate, injected, real_runs  # noqa: E402

from rldk_track.analyzers import build_observers  # noqa: E402
from rldk_track.keymaps import canonicalize  # noqa: E402


def dump(name: str, records: Iterable[tuple[int, dict[str, float]]], out: IO[str]) -> None:
    """Feed ``records`` to fresh default rules; write their alerts and end-of-run records."""
    rules = build_observers("default")
    for step, values in records:
        for rule in rules:
            for alert in rule.update(step, values):
                out.write(json.dumps([name, step, dataclasses.asdict(alert)], default=repr) + "\n")
    for rule in rules:
        for record in rule.finish():
            fields = dataclasses.asdict(record)
            fields.pop("wall_time", None)
            out.write(json.dumps([name, "finish", type(record).__name__, fields], default=repr) + "\n")


def main() -> None:
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        for stream in all_streams() + injected(real_runs(), STRESS):
            for rate in RATES:
                rows = at_rate(stream.rows, rate)
                dump(f"{stream.name}@{rate}", [(int(r["step"]), canonicalize({k: v for k, v in r.items() if k != "step"}, "trl"))
                                               for r in rows], out)
        for seed in range(3):
            dump(f"overhead{seed}", enumerate(grpo_like_records(1000, seed)), out)


if __name__ == "__main__":
    main()
