"""The benchmark's labelled metric streams: real TRL logs, sparser logging rates, injected faults.

* ``runs/*.json.gz``: per-step logs (``logging_steps=1``) of real TRL runs on the demo's tiny model,
  written by ``generate.py``, with TRL's own key names. Healthy runs have no fault; the others carry
  the fault their construction put in (a reward function that changes at a known optimizer step, a
  learning rate multiplied at a known step).
* :data:`INJECTED`: faults written into the per-step log of a real healthy run at a known step, for
  what the tiny model cannot be made to show on demand (a single bad update, NaN, an entropy
  collapse, a KL runaway, one reward component doubling, every completion truncated, no learning
  signal). Ground truth is always the construction, never what an analyzer says.
* :func:`at_rate`: the log TRL would have written with ``logging_steps=k``: TRL's GRPO/RLOO/DPO
  metrics are the mean of the finite per-step values since the last log (``GRPOTrainer.log``
  filters NaN), transformers' ``loss`` is the mean of the interval's step losses, and ``grad_norm``,
  ``learning_rate``, ``epoch`` and ``num_tokens`` are the value at the logging step (transformers
  5.24 ``Trainer._maybe_log_save_evaluate`` logs the ``grad_norm`` of the step it logs at, not a
  mean: one step's gradient norm is seen only if that step is a logging step). With
  ``logging_nan_inf_filter=True`` (the default) a NaN/Inf step loss is replaced by
  ``running_sum / (1 + steps since the last log)`` before it is added (``Trainer`` training loop), so
  the logged loss stays finite, also at ``logging_steps=1`` (where it becomes 0.0).

A fault that starts at optimizer step ``K`` first shows in the record logged for step ``K + 1``;
at rate ``k`` that is the record of the block holding step ``K + 1``.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

RUNS_DIR = Path(__file__).resolve().parent / "runs"
RATES = (1, 5, 10)
#: Delay budgets in logged steps, by kind of fault (issue 9's targets).
BUDGETS = {"abrupt": 3, "level": 10, "slow": 20}
#: Values TRL/transformers log as the value at the logging step, not as a mean over the interval.
LAST_VALUE = frozenset({"grad_norm", "learning_rate", "epoch", "num_tokens"})
#: transformers' running loss: the interval's mean, NaN/Inf steps replaced (``logging_nan_inf_filter``).
PLAIN_MEAN = frozenset({"loss"})
CAP = 32  # max_completion_length of the generated runs
NAN = float("nan")

#: Base runs held out from tuning: the rules were adjusted looking only at the other streams; these
#: (and every fault injected into them) are reported separately.
HELD_OUT = frozenset({
    "grpo_healthy_s2", "grpo_healthy_two_rewards_s1", "grpo_healthy_hot_s4", "rloo_healthy_s1",
    "grpo_scale_1000_s1", "grpo_length_mid_run_s1",
})

Row = dict[str, float]


@dataclass
class Fault:
    cls: str  # fault class
    step: int  # optimizer step the fault starts at (it shows from the record of step + 1)
    budget: str  # "abrupt", "level" or "slow"


@dataclass
class Stream:
    """One labelled run: per-step rows (``step`` plus TRL's keys) and its fault, if any."""

    name: str
    base: str  # the real run it comes from
    trainer: str
    rows: list[Row]
    fault: Fault | None = None
    held_out: bool = field(default=False)


def load_run(path: Path) -> Stream:
    doc = json.loads(gzip.open(path, "rt", encoding="utf-8").read())
    columns = doc["columns"]
    rows = []
    for i, step in enumerate(doc["steps"]):
        row: Row = {"step": step}
        for key, values in columns.items():
            value = values[i]
            if value is not None:
                row[key] = float(value)
        rows.append(row)
    fault = Fault(**doc["faults"][0]) if doc["faults"] else None
    return Stream(doc["name"], doc["name"], doc["trainer"], rows, fault, doc["name"] in HELD_OUT)


def real_runs() -> dict[str, Stream]:
    return {s.name: s for s in map(load_run, sorted(RUNS_DIR.glob("*.json.gz")))}


def at_rate(rows: list[Row], k: int) -> list[Row]:
    """The rows TRL logs with ``logging_steps=k`` (one per block of ``k`` optimizer steps)."""
    out: list[Row] = []
    for start in range(0, len(rows) - k + 1, k):
        block = rows[start:start + k]
        row: Row = {"step": block[-1]["step"]}
        for key in dict.fromkeys(key for r in block for key in r if key != "step"):
            values = [r[key] for r in block if key in r]
            if key in LAST_VALUE:
                row[key] = block[-1].get(key, values[-1])
            elif key in PLAIN_MEAN:
                total = 0.0
                for j, value in enumerate(values):
                    total += value if math.isfinite(value) else total / (1 + j)
                row[key] = total / len(values)
            else:
                finite = [v for v in values if not math.isnan(v)]
                if finite:
                    row[key] = sum(finite) / len(finite)
        out.append(row)
    return out


def first_faulty_index(stream: Stream, k: int) -> int:
    """Index (0-based) of the first record at rate ``k`` that holds a faulty optimizer step."""
    assert stream.fault is not None
    return max(0, math.ceil((stream.fault.step + 1) / k) - 1)


# -- injected faults --------------------------------------------------------------------------
Injector = Callable[[Row, int], None]  # (row, optimizer steps since the fault began: 1, 2, ...) -> edits row


def _bad_update(row: Row, t: int) -> None:
    """One update far too large: the gradient norm x40 at one step, KL and loss jump after it and
    decay back over a few steps. The KL rise is ``12 |kl| + 0.05`` halving each step: ``kl x 13``
    for GRPO's k3 estimate (never negative), and still a rise for RLOO's k1 estimate, which is
    signed (``logp - ref_logp`` per token) and would otherwise be pushed further negative."""
    if t == 1:
        row["grad_norm"] *= 40
        row["loss"] = row.get("loss", 0.0) + 2.0
    if "kl" in row and 1 <= t <= 6:
        row["kl"] += (12 * abs(row["kl"]) + 0.05) * 0.5 ** (t - 1)
    if "entropy" in row and 1 <= t <= 6:
        row["entropy"] *= 1 + 0.6 * 0.5 ** (t - 1)


def _bad_update_quiet(row: Row, t: int) -> None:
    """A bad update whose own loss is ordinary (on-policy GRPO: the policy loss is ~0 whatever the
    batch): the gradient norm x40 at the bad step, then KL and entropy pushed from the next step on
    (the logged KL of a step is computed before its update) and decaying as in ``_bad_update``."""
    if t == 1:
        row["grad_norm"] *= 40
    u = t - 1  # steps since the update took effect
    if "kl" in row and 1 <= u <= 6:
        row["kl"] += (12 * abs(row["kl"]) + 0.05) * 0.5 ** (u - 1)
    if "entropy" in row and 1 <= u <= 6:
        row["entropy"] *= 1 + 0.6 * 0.5 ** (u - 1)


def _nan(row: Row, t: int) -> None:
    """The loss and gradient overflow from here on."""
    row["loss"] = NAN
    row["grad_norm"] = NAN


def _truncation(row: Row, t: int) -> None:
    """Completions grow to the length cap over 10 steps: in the end every one is cut."""
    p = min(1.0, t / 10)
    row["completions/clipped_ratio"] = max(row.get("completions/clipped_ratio", 0.0), p)
    for key in ("completions/mean_length", "completions/min_length"):
        if key in row:
            row[key] = row[key] + (CAP - row[key]) * p
    row["completions/max_length"] = float(CAP) if p > 0.3 else row.get("completions/max_length", CAP)
    if p >= 1.0:
        for key in ("completions/mean_terminated_length", "completions/min_terminated_length",
                    "completions/max_terminated_length"):
            row[key] = 0.0


def _entropy_collapse(row: Row, t: int) -> None:
    """Entropy falls to 5 % over about 15 steps; the groups stop differing."""
    f = max(0.05, math.exp(-t / 5))
    row["entropy"] *= f
    row["frac_reward_zero_std"] = max(row.get("frac_reward_zero_std", 0.0), 1 - f)
    for key in ("reward_std", "rewards/well_formed/std"):
        if key in row:
            row[key] *= f


def _kl_runaway(row: Row, t: int) -> None:
    """KL doubles about every 10 steps (a KL coefficient far too small for the learning rate)."""
    row["kl"] = row["kl"] * math.exp(t / 14) + 0.002 * t


def _component_doubling(row: Row, t: int) -> None:
    """One reward component (brevity) climbs to twice its level over 20 steps; the other stays."""
    before = row["rewards/brevity/mean"]
    row["rewards/brevity/mean"] = before * (1 + min(1.0, t / 20))
    row["reward"] += row["rewards/brevity/mean"] - before


def _no_signal(row: Row, t: int) -> None:
    """Every group gets the same reward: zero advantages, a zero loss and gradient (no KL term)."""
    row["frac_reward_zero_std"] = 1.0
    row["reward_std"] = 0.0
    row["rewards/well_formed/std"] = 0.0
    row["grad_norm"] = 0.0
    row["loss"] = 0.0
    row["clip_ratio/region_mean"] = 0.0


def _scale(factor: float) -> Injector:
    def inject(row: Row, t: int) -> None:
        for key in ("reward", "reward_std", "rewards/well_formed/mean", "rewards/well_formed/std"):
            if key in row:
                row[key] *= factor if "std" not in key or factor > 0 else -factor
    return inject


#: name -> (base real run, class, fault step, budget, injector)
INJECTED: dict[str, tuple[str, str, int, str, Injector]] = {
    "inj_bad_update_s0": ("grpo_healthy_s0", "bad_update", 120, "abrupt", _bad_update),
    "inj_bad_update_s2": ("grpo_healthy_s2", "bad_update", 150, "abrupt", _bad_update),
    "inj_bad_update_rloo_s0": ("rloo_healthy_s0", "bad_update", 110, "abrupt", _bad_update),
    "inj_nan_s1": ("grpo_healthy_s1", "nan", 130, "abrupt", _nan),
    "inj_nan_s2": ("grpo_healthy_s2", "nan", 90, "abrupt", _nan),
    "inj_truncation_s1": ("grpo_healthy_s1", "truncation", 100, "slow", _truncation),
    "inj_truncation_g8_s3": ("grpo_healthy_g8_s3", "truncation", 60, "slow", _truncation),
    "inj_truncation_hot_s4": ("grpo_healthy_hot_s4", "truncation", 140, "slow", _truncation),
    "inj_entropy_collapse_s0": ("grpo_healthy_s0", "entropy_collapse", 100, "level", _entropy_collapse),
    "inj_entropy_collapse_early_s1": ("grpo_healthy_s1", "entropy_collapse", 20, "level", _entropy_collapse),
    "inj_entropy_collapse_early_s2": ("grpo_healthy_s2", "entropy_collapse", 30, "level", _entropy_collapse),
    "inj_entropy_collapse_rloo_s0": ("rloo_healthy_s0", "entropy_collapse", 60, "level", _entropy_collapse),
    "inj_kl_runaway_s0": ("grpo_healthy_s0", "kl_runaway", 100, "slow", _kl_runaway),
    "inj_kl_runaway_g8_s3": ("grpo_healthy_g8_s3", "kl_runaway", 60, "slow", _kl_runaway),
    "inj_kl_runaway_s2": ("grpo_healthy_s2", "kl_runaway", 120, "slow", _kl_runaway),
    "inj_component_doubling_s0": ("grpo_healthy_two_rewards_s0", "component_doubling", 100, "slow", _component_doubling),
    "inj_component_doubling_s1": ("grpo_healthy_two_rewards_s1", "component_doubling", 120, "slow", _component_doubling),
    "inj_no_signal_nokl_s0": ("grpo_healthy_nokl_s0", "no_signal", 100, "level", _no_signal),
    "inj_no_signal_start_nokl_s0": ("grpo_healthy_nokl_s0", "no_signal", 0, "level", _no_signal),
    "inj_scale_1000_s0": ("grpo_healthy_s0", "reward_scale", 140, "abrupt", _scale(1000.0)),
    "inj_sign_flip_s2": ("grpo_healthy_s2", "reward_sign_flip", 110, "abrupt", _scale(-1.0)),
    "inj_sign_flip_rloo_s0": ("rloo_healthy_s0", "reward_sign_flip", 130, "abrupt", _scale(-1.0)),
}


#: Faults reported apart from the totals (``run.py`` prints their own table): variants that the
#: logged metrics may not show at every rate, kept to say so with figures rather than hide it.
STRESS: dict[str, tuple[str, str, int, str, Injector]] = {
    "stress_bad_update_quiet_s0": ("grpo_healthy_s0", "bad_update_quiet", 120, "abrupt", _bad_update_quiet),
    "stress_bad_update_quiet_s2": ("grpo_healthy_s2", "bad_update_quiet", 150, "abrupt", _bad_update_quiet),
    "stress_bad_update_quiet_rloo_s0": ("rloo_healthy_s0", "bad_update_quiet", 110, "abrupt", _bad_update_quiet),
}


def injected(runs: dict[str, Stream], table: dict[str, tuple[str, str, int, str, Injector]] = INJECTED) -> list[Stream]:
    """The faults of ``table`` written into copies of their base runs."""
    out = []
    for name, (base, cls, step, budget, inject) in table.items():
        rows = [dict(r) for r in runs[base].rows]
        for row in rows:
            if row["step"] > step:
                inject(row, int(row["step"]) - step)
        out.append(Stream(name, base, runs[base].trainer, rows, Fault(cls, step, budget), base in HELD_OUT))
    return out


def all_streams() -> list[Stream]:
    """Every labelled stream at ``logging_steps=1``: the real runs, then the injected faults."""
    runs = real_runs()
    return list(runs.values()) + injected(runs)
