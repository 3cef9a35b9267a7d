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
from corpus import RATES, all_streams, at_rate  # noqa: E402


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


def test_sparse_logging_is_derived_as_transformers_logs_it():
    """grad_norm is the logging step's own; the loss is the interval's mean with NaN steps replaced
    by running_sum / (1 + steps since the last log) (``logging_nan_inf_filter``). Figures of a real
    TRL SFTTrainer run (transformers 5.24) with a NaN weight from step 13: at logging_steps=5 it
    logged loss 3.36256 for steps 11-15 (4.26885, 4.13755, then NaN), and 0.0 (not NaN) after."""
    nan = float("nan")
    rows = [{"step": s, "loss": loss, "grad_norm": g}
            for s, loss, g in [(11, 4.268845, 1.46), (12, 4.137555, 1.92), (13, nan, nan), (14, nan, nan), (15, nan, nan)]]
    (row,) = at_rate(rows, 5)
    assert row["loss"] == pytest.approx(3.3625599, rel=1e-6) and row["grad_norm"] != row["grad_norm"]
    assert [r["loss"] for r in at_rate(rows, 1)] == pytest.approx([4.268845, 4.137555, 0.0, 0.0, 0.0])
