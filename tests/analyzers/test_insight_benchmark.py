"""The labelled health-alert benchmark (benchmarks/insight/) on its cached corpus: no critical alert
on any healthy record, and recall and false alarms no worse than the committed figures (a
regression guard: rerun ``python benchmarks/insight/run.py --json benchmarks/insight/figures.json``
after a deliberate change, and say why in the commit)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "insight"
sys.path.insert(0, str(BENCH))
import run as insight  # noqa: E402
from corpus import RATES, all_streams  # noqa: E402


@pytest.fixture(scope="module")
def table():
    return insight.figures(insight.score(all_streams()))


@pytest.mark.parametrize("rate", [str(r) for r in RATES])
def test_no_critical_alert_on_any_healthy_record(table, rate):
    assert table[rate]["all"]["critical_false_alarms"] == 0


@pytest.mark.parametrize("rate", [str(r) for r in RATES])
def test_recall_and_false_alarms_are_no_worse_than_the_committed_figures(table, rate):
    committed = json.loads((BENCH / "figures.json").read_text(encoding="utf-8"))[rate]["all"]
    now = table[rate]["all"]
    assert now["recall"] >= committed["recall"], (rate, now["by_class"], committed["by_class"])
    assert now["false_alarms"] <= committed["false_alarms"]
    for cls, (hits, total) in committed["by_class"].items():
        assert now["by_class"][cls][0] >= hits, (rate, cls)
