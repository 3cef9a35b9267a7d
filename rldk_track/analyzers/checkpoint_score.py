"""Checkpoint health, the judging part: flags, the health score, the status and the advice.

The health score (documented with examples in ``docs/checkpoint_health.md``) is a product of
three factors, each in [0, 1]:

- finite: ``1`` when every value is finite, else ``0.4 * (1 - bad / float_tensors)`` where
  ``bad`` counts tensors holding NaN or Inf (so any NaN makes the checkpoint critical);
- drift (only with a reference): ``1 / (1 + (D / drift_scale)^2)`` with ``D`` the global relative
  drift (all compared tensors taken as one vector) and ``drift_scale = 0.25``;
- tensors: ``anomaly_penalty ** k`` (0.9 per tensor) with ``k`` the anomalous tensors: constant
  matrices (ndim >= 2, max == min: a zeroed or reset layer), ``max |w| > max_abs_limit`` (1e4;
  fp16 overflows at 65504), or a tensor that moved more than ``tensor_drift_limit`` (1.0) times its
  own norm.

Status: ``critical`` when any value is non-finite or the score is below 0.5, ``warning`` below 0.8,
else ``ok``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rldk_track.analyzers.checkpoint_scan import TensorStats

#: The advice on a healthy checkpoint (a report leaves it out once the checkpoint is deleted).
SAFE_TO_RESUME = "Healthy: safe to resume from."


@dataclass(frozen=True)
class HealthThresholds:
    """The knobs of the health score and of the alerts (see the module docstring)."""

    drift_scale: float = 0.25
    tensor_drift_limit: float = 1.0
    max_abs_limit: float = 1e4
    anomaly_penalty: float = 0.9
    warning_below: float = 0.8
    critical_below: float = 0.5
    #: a tensor's own drift is judged only when its reference RMS is at least this (a zero-init
    #: LoRA ``B`` matrix has no meaningful relative drift).
    min_reference_rms: float = 1e-6


def flag_anomalies(stats: TensorStats, thresholds: HealthThresholds) -> None:
    """Add to ``stats.flags`` what is wrong with the tensor: ``nonfinite``, ``constant`` (a matrix
    with min == max), ``huge`` (max |w| above the limit), ``moved`` (further than its own norm)."""
    if stats.nonfinite:
        stats.flags.append("nonfinite")
    if len(stats.shape) >= 2 and stats.numel > 1 and stats.nonfinite < stats.numel and stats.min == stats.max:
        stats.flags.append("constant")
    if stats.max_abs > thresholds.max_abs_limit:
        stats.flags.append("huge")
    ref_rms = (stats.ref_norm or 0.0) / math.sqrt(max(stats.numel, 1))
    if stats.drift is not None and ref_rms >= thresholds.min_reference_rms and stats.drift > thresholds.tensor_drift_limit:
        stats.flags.append("moved")


def health_score(
    float_tensors: int,
    nonfinite_tensors: int,
    drift: float | None,
    anomalous_tensors: int,
    thresholds: HealthThresholds = HealthThresholds(),
) -> tuple[float, dict[str, float]]:
    """The health score in [0, 1] and its three factors (formula in the module docstring)."""
    finite = 1.0 if nonfinite_tensors == 0 else 0.4 * (1.0 - nonfinite_tensors / max(float_tensors, 1))
    moved = 1.0 if drift is None or not math.isfinite(drift) else 1.0 / (1.0 + (drift / thresholds.drift_scale) ** 2)
    tensors = thresholds.anomaly_penalty ** anomalous_tensors
    factors = {"finite": finite, "drift": moved, "tensors": tensors}
    return min(1.0, max(0.0, finite * moved * tensors)), factors


def status_of(score: float, nonfinite: bool, thresholds: HealthThresholds = HealthThresholds()) -> str:
    """``critical``, ``warning`` or ``ok`` (the ``rldk.checkpoint.health`` tag)."""
    if nonfinite or score < thresholds.critical_below:
        return "critical"
    return "warning" if score < thresholds.warning_below else "ok"


def advice(
    tensors: list[TensorStats],
    nonfinite: list[TensorStats],
    drift: float | None,
    thresholds: HealthThresholds,
    previous_step: int | None,
    status: str,
) -> tuple[list[str], list[str]]:
    """The issues found (each naming its tensors) and what to do about each."""
    issues: list[str] = []
    advice: list[str] = []
    if nonfinite:
        named = ", ".join(f"{t.name} ({t.nan} NaN, {t.inf} Inf)" for t in nonfinite[:5])
        more = f" and {len(nonfinite) - 5} more" if len(nonfinite) > 5 else ""
        issues.append(f"non-finite weights in {len(nonfinite)} tensor(s): {named}{more}")
        last = f" (step {previous_step})" if previous_step is not None else ""
        advice.append(
            f"Do not resume from or deploy this checkpoint; go back to the last healthy one{last}. NaN/Inf "
            "weights follow an exploding update: lower the learning rate, clip gradients (max_grad_norm), "
            "and prefer bf16 over fp16 (or check the loss scaler)."
        )
    if drift is not None and drift >= thresholds.drift_scale / 2:
        since = f" since step {previous_step}" if previous_step is not None else " from the reference"
        issues.append(f"weights moved {drift:.1%}{since} (relative L2)")
        advice.append(
            "Large weight drift between checkpoints: if unintended, lower the learning rate or raise the KL "
            "penalty (beta) and check the reward/KL curves over these steps for reward hacking."
        )
    constant = [t for t in tensors if "constant" in t.flags]
    if constant:
        issues.append(f"{len(constant)} constant weight matrix(es) (all values {constant[0].max:g} in {constant[0].name})")
        advice.append("A constant matrix is a zeroed or reset layer (or an adapter that has not trained yet): "
                      "check weight loading, freezing and any custom initialisation.")
    huge = [t for t in tensors if "huge" in t.flags]
    if huge:
        worst = max(huge, key=lambda t: t.max_abs)
        issues.append(f"{len(huge)} tensor(s) with |w| above {thresholds.max_abs_limit:g} (up to {worst.max_abs:.3g} in {worst.name})")
        advice.append("Very large weights overflow in fp16 (65504) and destabilise training: use weight decay "
                      "and gradient clipping, and look for the layer that diverged.")
    moved = [t for t in tensors if "moved" in t.flags]
    if moved:
        worst = max(moved, key=lambda t: t.drift or 0.0)
        issues.append(f"{len(moved)} tensor(s) moved more than {thresholds.tensor_drift_limit:g}x their own norm "
                      f"(up to {worst.drift:.2f}x in {worst.name})")
        if drift is None or drift < thresholds.drift_scale / 2:
            advice.append("Single layers moved far while the model as a whole did not: inspect those layers' "
                          "gradients; a per-layer learning rate or freezing them may help.")
    if status == "ok" and not issues:
        advice.append(SAFE_TO_RESUME)
    return issues, advice
