"""Score the default analyzers on the labelled streams of ``corpus.py`` at logging_steps 1, 5 and 10.

Each stream is replayed record by record the way ``RLDKCallback.on_log`` feeds a run: the TRL logs
dict (``None`` dropped) is canonicalized with the TRL key map and handed, with its step, to fresh
``build_observers(spec)`` rules. Then, counting only raised ``warning``/``critical`` alerts:

* **recall**: a fault counts as detected when an alert is raised at or after its first faulty record
  within its budget (``abrupt`` 3, ``level`` 10, ``slow`` 20 logged steps); the delay is the number
  of logged steps from the first faulty record to that alert;
* **false alarms**: every alert raised on a healthy run, or on a faulty run before its first faulty
  record, per 1000 such healthy logged records; **critical** ones are counted apart.

Usage::

    python benchmarks/insight/run.py [--verbose] [--write] [--json PATH] [--analyzers SPEC]

``--analyzers`` takes a JSON analyzer spec (what ``build_observers`` takes), e.g.
``'[{"update_spike": {"z": 3.5}}]'`` to score one rule alone with another threshold.

``--write`` puts the table into ``benchmarks/RESULTS.md`` (between the insight markers) under the
label given by ``--label`` (e.g. ``before``, ``after``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import (BUDGETS, RATES, STRESS, Stream, all_streams, at_rate, first_faulty_index, injected,  # noqa: E402
                    real_runs)

from rldk_track.analyzers import build_observers  # noqa: E402
from rldk_track.keymaps import canonicalize  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "RESULTS.md"
BEGIN, END = "<!-- insight:begin -->", "<!-- insight:end -->"


@dataclass
class Outcome:
    stream: Stream
    rate: int
    records: int
    healthy_records: int  # records before the fault (all of them on a healthy run)
    false_alarms: list[tuple[int, str, str]]  # (index, rule, severity) raised in the healthy part
    delay: int | None  # logged steps from the first faulty record to the first alert (None: none)
    detecting_rule: str | None

    @property
    def detected(self) -> bool:
        return self.delay is not None and self.delay <= BUDGETS[self.stream.fault.budget]


def raised(rows: list[dict[str, float]], spec: Any) -> list[tuple[int, str, str]]:
    """``(record index, rule, severity)`` of each warning/critical alert raised replaying ``rows``."""
    rules = build_observers(spec)
    out: list[tuple[int, str, str]] = []
    for i, row in enumerate(rows):
        values = canonicalize({k: v for k, v in row.items() if k != "step"}, "trl")
        for rule in rules:
            out += [(i, a.rule, a.severity) for a in rule.update(int(row["step"]), values)
                    if a.state == "raised" and a.severity != "info"]
    return out


def replay(stream: Stream, rate: int, spec: Any = "default", base: Stream | None = None) -> Outcome:
    """Score one stream. For a fault injected into ``base`` (a healthy run), an alert the base run
    raises too (same rule within the fault's budget of the same record) is not a detection: it
    would have come without the fault."""
    rows = at_rate(stream.rows, rate)
    start = first_faulty_index(stream, rate) if stream.fault else len(rows)
    alerts = raised(rows, spec)
    false_alarms = [a for a in alerts if a[0] < start]
    delay = rule_name = None
    if stream.fault:
        budget = BUDGETS[stream.fault.budget]
        background = raised(at_rate(base.rows, rate), spec) if base is not None else []
        for i, rule, _ in alerts:
            if i >= start and not any(r == rule and abs(j - i) <= budget for j, r, _ in background):
                delay, rule_name = i - start, rule
                break
    return Outcome(stream, rate, len(rows), min(start, len(rows)), false_alarms, delay, rule_name)


def score(streams: list[Stream], spec: Any = "default") -> dict[str, Any]:
    """Per rate: recall by class and overall, median delay, false alarms per 1000 healthy records,
    critical false alarms; split into dev and held-out streams."""
    table: dict[str, Any] = {}
    for rate in RATES:
        bases = {s.name: s for s in streams if s.fault is None}
        outcomes = [replay(s, rate, spec, bases.get(s.base) if s.base != s.name else None) for s in streams]
        table[str(rate)] = {part: _summary([o for o in outcomes if o.stream.held_out == held])
                            for part, held in (("dev", False), ("held_out", True))}
        table[str(rate)]["all"] = _summary(outcomes)
        table[str(rate)]["outcomes"] = outcomes
    return table


def _summary(outcomes: list[Outcome]) -> dict[str, Any]:
    faulty = [o for o in outcomes if o.stream.fault]
    by_class: dict[str, list[Outcome]] = {}
    for o in faulty:
        by_class.setdefault(o.stream.fault.cls, []).append(o)
    delays = [o.delay for o in faulty if o.detected]
    healthy = sum(o.healthy_records for o in outcomes)
    alarms = [a for o in outcomes for a in o.false_alarms]
    return {
        "faults": len(faulty),
        "recall": sum(o.detected for o in faulty) / len(faulty) if faulty else None,
        "median_delay": statistics.median(delays) if delays else None,
        "healthy_records": healthy,
        "false_alarms": len(alarms),
        "false_alarms_per_1000": 1000 * len(alarms) / healthy if healthy else 0.0,
        "critical_false_alarms": sum(1 for a in alarms if a[2] == "critical"),
        "by_class": {cls: (sum(o.detected for o in os), len(os)) for cls, os in sorted(by_class.items())},
    }


def markdown(table: dict[str, Any], label: str) -> str:
    rates = [str(r) for r in RATES]
    lines = [f"**{label}** (`python benchmarks/insight/run.py`)", "",
             "| logging_steps | " + " | ".join(rates) + " |", "|---|" + "---|" * len(rates)]

    def row(name: str, cell) -> None:
        lines.append(f"| {name} | " + " | ".join(cell(table[r]) for r in rates) + " |")

    def frac(part: str):
        return lambda t: f"{t[part]['recall']:.2f} ({round(t[part]['recall'] * t[part]['faults'])}/{t[part]['faults']})"

    row("recall within budget, all", frac("all"))
    row("recall, dev / held-out", lambda t: f"{t['dev']['recall']:.2f} / {t['held_out']['recall']:.2f}")
    row("median delay (logged steps)", lambda t: f"{t['all']['median_delay']:g}")
    row("false alarms / 1000 healthy records, all", lambda t: f"{t['all']['false_alarms_per_1000']:.1f} "
        f"({t['all']['false_alarms']} in {t['all']['healthy_records']})")
    row("false alarms / 1000, dev / held-out", lambda t: f"{t['dev']['false_alarms_per_1000']:.1f} / "
        f"{t['held_out']['false_alarms_per_1000']:.1f}")
    row("critical false alarms", lambda t: str(t["all"]["critical_false_alarms"]))
    classes = sorted(table[rates[0]]["all"]["by_class"])
    for cls in classes:
        row(f"&nbsp;&nbsp;{cls}", lambda t, c=cls: "{}/{}".format(*t["all"]["by_class"][c]))
    return "\n".join(lines)


def stress(spec: Any = "default") -> dict[str, dict[str, Outcome]]:
    """``{stream: {rate: outcome}}`` for the faults of ``corpus.STRESS`` (not in the totals)."""
    runs = real_runs()
    return {s.name: {str(rate): replay(s, rate, spec, runs[s.base]) for rate in RATES}
            for s in injected(runs, STRESS)}


def stress_markdown(outcomes: dict[str, dict[str, Outcome]]) -> str:
    lines = ["Reported apart (`corpus.STRESS`, not in the totals above):", "",
             "| stream | " + " | ".join(f"logging_steps={r}" for r in RATES) + " |", "|---|" + "---|" * len(RATES)]
    for name, by_rate in outcomes.items():
        cells = [f"caught, delay {o.delay}, {o.detecting_rule}" if o.detected else "missed" for o in by_rate.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def details(table: dict[str, Any]) -> str:
    out = []
    for rate in map(str, RATES):
        out.append(f"-- logging_steps={rate}")
        for o in table[rate]["outcomes"]:
            fault = o.stream.fault
            verdict = ("healthy" if fault is None else
                       f"{fault.cls:<20} {'HIT' if o.detected else 'miss'} delay={o.delay} by {o.detecting_rule}")
            fa = ", ".join(f"{r}@{i}{'!' if s == 'critical' else ''}" for i, r, s in o.false_alarms)
            out.append(f"  {o.stream.name:<32} {verdict}{'  FA: ' + fa if fa else ''}")
    return "\n".join(out)


def write_results(section: str, label: str) -> None:
    """Replace this label's block inside the insight markers of RESULTS.md (creating them)."""
    text = RESULTS.read_text(encoding="utf-8")
    if BEGIN not in text:
        text = text.rstrip("\n") + "\n\n" + BEGIN + "\n" + END + "\n"
    head, rest = text.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    blocks = [b for b in body.strip().split("\n\n<!-- block -->\n") if b and not b.startswith(f"**{label}**")]
    blocks.append(section)
    body = "\n\n<!-- block -->\n".join(blocks)
    RESULTS.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}", encoding="utf-8")


def figures(table: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able part of ``table`` (no outcomes), for the regression guard."""
    return {rate: {k: v for k, v in parts.items() if k != "outcomes"} for rate, parts in table.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="one line per stream and rate")
    parser.add_argument("--write", action="store_true", help="put the table into benchmarks/RESULTS.md")
    parser.add_argument("--label", default="default analyzers")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--analyzers", type=json.loads, help="a JSON analyzer spec (default: \"default\")")
    args = parser.parse_args(argv)
    table = score(all_streams(), "default" if args.analyzers is None else args.analyzers)
    if args.verbose:
        print(details(table))
    apart = stress("default" if args.analyzers is None else args.analyzers)
    section = markdown(table, args.label) + "\n\n" + stress_markdown(apart)
    print(section)
    if args.write:
        write_results(section, args.label)
    if args.json:
        doc = {**figures(table), "stress": {name: {rate: o.delay if o.detected else None for rate, o in by_rate.items()}
                                            for name, by_rate in apart.items()}}
        args.json.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
