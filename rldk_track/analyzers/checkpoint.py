"""Checkpoint health: is a saved checkpoint safe to resume from or deploy, and how far did it move?

``analyze(path, reference=None)`` streams the checkpoint's tensors (see ``checkpoint_files``:
memory is bounded by a chunk of elements, never the model) and computes, per tensor, NaN/Inf
counts, L2 norm, mean, std, min/max and max |w|; against a reference checkpoint, the relative L2
drift ``||w - w_ref|| / ||w_ref||`` and the cosine of ``w`` and ``w_ref``. It scores the checkpoint
and says what is wrong and what to do. :class:`CheckpointMonitor` runs this off the training
thread on every save and logs the result through a :class:`~rldk_track.run.Run`.

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

import json
import logging
import math
import os
import shutil
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from rldk_track.analyzers.checkpoint_files import (
    DEFAULT_CHUNK_ELEMENTS,
    CheckpointFormatError,
    CheckpointReader,
    TensorInfo,
    WeightFiles,
    find_weight_files,
)
from rldk_track.layout import RunLayout
from rldk_track.processes import process_alive
from rldk_track.records import Alert, Artifact, CheckpointHealth, Metrics, Record, Tags, checkpoint_folder
from rldk_track.system import lower_thread_priority

if TYPE_CHECKING:
    import numpy as np

    from rldk_track.run import Run

log = logging.getLogger("rldk_track")

__all__ = [
    "CheckpointFormatError",
    "CheckpointMonitor",
    "CheckpointReport",
    "HealthThresholds",
    "TensorStats",
    "analyze",
    "health_score",
]

TAG = "rldk.checkpoint.health"
RULE_NONFINITE = "checkpoint_nonfinite"
RULE_HEALTH = "checkpoint_health"
RULE_UNREADABLE = "checkpoint_unreadable"
TOP_DRIFT = 5


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


@dataclass
class TensorStats:
    """What one tensor looks like (and how it moved, when there is a reference)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    numel: int
    nan: int = 0
    inf: int = 0
    norm: float = 0.0
    mean: float = 0.0
    std: float = 0.0
    min: float = 0.0
    max: float = 0.0
    max_abs: float = 0.0
    ref_norm: float | None = None
    drift: float | None = None
    cosine: float | None = None
    flags: list[str] = field(default_factory=list)

    @property
    def nonfinite(self) -> int:
        return self.nan + self.inf


@dataclass
class CheckpointReport:
    """Everything ``analyze`` found; ``to_records(step)`` turns it into what a run logs."""

    path: str
    format: str
    files: list[str]
    reference: str | None
    reference_step: int | None
    tensors: list[TensorStats]
    parameters: int
    skipped: list[str]
    nan: int
    inf: int
    nonfinite_tensors: list[str]
    weight_norm: float
    drift: float | None
    cosine: float | None
    score: float
    status: str
    factors: dict[str, float]
    issues: list[str]
    recommendations: list[str]
    notes: list[str]
    bytes_read: int
    seconds: float

    @property
    def healthy(self) -> bool:
        """No NaN/Inf: usable as the drift reference for the next checkpoint."""
        return not self.nonfinite_tensors

    def top_drift(self, k: int = TOP_DRIFT) -> list[TensorStats]:
        """The ``k`` tensors that moved most relative to their own norm."""
        moved = [t for t in self.tensors if t.drift is not None and math.isfinite(t.drift)]
        return sorted(moved, key=lambda t: t.drift or 0.0, reverse=True)[:k]

    def summary(self) -> dict[str, Any]:
        """The compact statistics kept in the ``CheckpointHealth`` record."""
        return {
            "format": self.format,
            "files": len(self.files),
            "tensors": len(self.tensors),
            "parameters": self.parameters,
            "skipped_tensors": len(self.skipped),
            "nan": self.nan,
            "inf": self.inf,
            "nonfinite_tensors": self.nonfinite_tensors[:20],
            "weight_norm": self.weight_norm,
            "reference": self.reference,
            "reference_step": self.reference_step,
            "drift": self.drift,
            "cosine": self.cosine,
            "top_drift": [{"name": t.name, "drift": t.drift, "cosine": t.cosine} for t in self.top_drift()],
            "status": self.status,
            "factors": self.factors,
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        """The full report (``report.json``), with one row per tensor."""
        out = asdict(self)
        out["top_drift"] = [t.name for t in self.top_drift()]
        return _finite_json(out)

    def to_markdown(self, step: int | None = None) -> str:
        """A short human summary (``health.md``)."""
        title = f"Checkpoint health, step {step}" if step is not None else f"Checkpoint health: {self.path}"
        lines = [
            f"# {title}",
            "",
            f"**Score {self.score:.3f} ({self.status})**: {len(self.tensors)} tensors, "
            f"{self.parameters / 1e6:.1f}M parameters, {self.bytes_read / 1e9:.2f} GB read in {self.seconds:.1f} s",
            f"`{self.path}`",
            "",
        ]
        if self.nan or self.inf:
            lines += [f"Non-finite values: {self.nan} NaN, {self.inf} Inf in {len(self.nonfinite_tensors)} tensor(s)", ""]
        if self.drift is not None:
            since = f"step {self.reference_step}" if self.reference_step is not None else f"`{self.reference}`"
            lines += [f"Drift since {since}: {self.drift:.3%} (cosine {_fmt(self.cosine)})", ""]
            top = self.top_drift()
            if top:
                lines += ["| tensor | drift | cosine |", "| --- | ---: | ---: |"]
                lines += [f"| `{t.name}` | {t.drift:.3%} | {_fmt(t.cosine)} |" for t in top]
                lines.append("")
        for heading, items in (("Issues", self.issues), ("Recommendations", self.recommendations), ("Notes", self.notes)):
            if items:
                lines += [f"## {heading}", "", *(f"- {item}" for item in items), ""]
        return "\n".join(lines)

    def to_records(self, step: int) -> list[Record]:
        """The records a run logs for this checkpoint at ``step`` (alerts come from
        :class:`CheckpointAlerts`, which remembers what was already raised).

        The ``Metrics`` record is the only source of the ``checkpoint/*`` series: backends show
        the ``CheckpointHealth`` record in their own non-series form (a tag or summary, a text,
        a ``health.json``), so the full report is ``report.json`` and never shares that name."""
        now = time.time()
        metrics = {
            "checkpoint/health_score": self.score,
            "checkpoint/nan_count": float(self.nan),
            "checkpoint/inf_count": float(self.inf),
            "checkpoint/weight_norm": self.weight_norm,
            "checkpoint/analysis_s": self.seconds,
        }
        if self.drift is not None:
            metrics["checkpoint/drift"] = self.drift
        if self.cosine is not None:
            metrics["checkpoint/cosine"] = self.cosine
        folder = checkpoint_folder(step)
        return [
            CheckpointHealth(-1, now, step, self.path, self.score, tuple(self.issues), _finite_json(self.summary()),
                             tuple(self.recommendations)),
            Metrics(-1, now, step, metrics),
            Tags(-1, now, {TAG: self.status}),
            Artifact(-1, now, f"{folder}/report.json", data=json.dumps(self.to_dict(), indent=1).encode()),
            Artifact(-1, now, f"{folder}/health.md", data=self.to_markdown(step).encode()),
        ]


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


# -- analysis ------------------------------------------------------------------------------------
def analyze(
    path: str | os.PathLike[str] | WeightFiles,
    reference: str | os.PathLike[str] | WeightFiles | None = None,
    *,
    thresholds: HealthThresholds = HealthThresholds(),
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    previous_step: int | None = None,
) -> CheckpointReport:
    """Analyze the checkpoint at ``path`` (a directory or a weight file), comparing it with
    ``reference`` when given. Reads one chunk of ``chunk_elements`` values at a time.
    ``previous_step`` is the reference's training step, if known (shown in the report)."""
    started = time.perf_counter()
    weights = path if isinstance(path, WeightFiles) else find_weight_files(path)
    ref_weights = reference if reference is None or isinstance(reference, WeightFiles) else find_weight_files(reference)
    with CheckpointReader(weights, chunk_elements) as current:
        ref_reader = CheckpointReader(ref_weights, chunk_elements) if ref_weights is not None else None
        try:
            tensors, skipped, bytes_read, compare = _scan(current, ref_reader, chunk_elements, thresholds)
        finally:
            if ref_reader is not None:
                ref_reader.close()
        notes = list(current.notes) + (ref_reader.notes if ref_reader else [])
    if not any(t.numel for t in tensors):
        hint = (": its weight tensors are empty, as DeepSpeed ZeRO-3 saves them (the values live in the optimizer "
                "partitions); save a 16-bit copy to analyze (stage3_gather_16bit_weights_on_model_save, or "
                "OpenRLHF's --save_hf_ckpt)") if tensors else ""
        raise CheckpointFormatError(f"{weights.origin} holds no floating-point weights{hint}")
    if ref_reader is not None:
        notes += compare.notes(ref_reader, current)
    return _report(weights, ref_weights, tensors, skipped, bytes_read, compare, notes, thresholds,
                   time.perf_counter() - started, previous_step)


class _Comparison:
    """Sums over the tensors compared with the reference (one long vector)."""

    def __init__(self) -> None:
        self.xx = 0.0
        self.yy = 0.0
        self.dd = 0.0
        self.compared = 0
        self.shape_changed: list[str] = []
        self.nonfinite_reference: list[str] = []

    @property
    def drift(self) -> float | None:
        if not self.compared or self.yy <= 0.0:
            return None
        return math.sqrt(self.dd / self.yy)

    @property
    def cosine(self) -> float | None:
        if not self.compared or self.xx <= 0.0 or self.yy <= 0.0:
            return None
        return _clamp((self.xx + self.yy - self.dd) / (2.0 * math.sqrt(self.xx * self.yy)))

    def notes(self, reference: CheckpointReader, current: CheckpointReader) -> list[str]:
        out = []
        new = [n for n, t in current.tensors.items() if t.is_float and n not in reference.tensors]
        gone = [n for n, t in reference.tensors.items() if t.is_float and n not in current.tensors]
        if not self.compared:
            out.append("the reference shares no tensor with this checkpoint: no drift computed")
        if new:
            out.append(f"{len(new)} tensor(s) not in the reference (e.g. {new[0]})")
        if gone:
            out.append(f"{len(gone)} reference tensor(s) missing here (e.g. {gone[0]})")
        if self.shape_changed:
            out.append(f"{len(self.shape_changed)} tensor(s) changed shape (e.g. {self.shape_changed[0]})")
        if self.nonfinite_reference:
            out.append(f"the reference has NaN/Inf in {len(self.nonfinite_reference)} tensor(s); their drift is unknown")
        return out


def _scan(
    current: CheckpointReader,
    reference: CheckpointReader | None,
    chunk: int,
    thresholds: HealthThresholds,
) -> tuple[list[TensorStats], list[str], int, _Comparison]:
    import numpy as np

    x_buf = np.empty(chunk, dtype=np.float32)
    y_buf = np.empty(chunk, dtype=np.float32) if reference is not None else None
    scratch = np.empty(chunk, dtype=np.float32)
    compare = _Comparison()
    tensors: list[TensorStats] = []
    skipped: list[str] = []
    bytes_read = 0
    for name, info in current.tensors.items():
        if not info.is_float:
            skipped.append(f"{name} ({info.dtype})")
            continue
        ref_info = reference.tensors.get(name) if reference is not None else None
        if ref_info is not None and (ref_info.shape != info.shape or not ref_info.is_float):
            compare.shape_changed.append(name)
            ref_info = None
        stats, ref_ok, diff_sq = _tensor_stats(current, info, reference if ref_info else None, x_buf, y_buf, scratch)
        bytes_read += info.nbytes * (2 if ref_info else 1)
        if ref_info is not None:
            if ref_ok and stats.nonfinite == 0:
                compare.compared += 1
                compare.xx += stats.norm**2
                compare.yy += (stats.ref_norm or 0.0) ** 2
                compare.dd += diff_sq
            elif not ref_ok:
                compare.nonfinite_reference.append(name)
        _flag(stats, info, thresholds)
        tensors.append(stats)
    return tensors, skipped, bytes_read, compare


def _tensor_stats(
    reader: CheckpointReader,
    info: TensorInfo,
    reference: CheckpointReader | None,
    x_buf: "np.ndarray",
    y_buf: "np.ndarray | None",
    scratch: "np.ndarray",
) -> tuple[TensorStats, bool, float]:
    """One pass over a tensor, chunk by chunk: moments (per chunk from the sum and the sum of
    squares, about the chunk mean when the mean dominates; chunks merged with Chan's parallel
    update, so the variance of weights near a large mean stays exact), extremes, non-finite counts and, with a
    reference, the squared norms of ``w_ref`` and ``w - w_ref``. Returns the stats, whether the
    reference was finite, and ``||w - w_ref||^2``."""
    import numpy as np

    stats = TensorStats(info.name, info.dtype, info.shape, info.numel)
    n = 0
    mean = m2 = 0.0
    lo, hi = math.inf, -math.inf
    yy = dd = 0.0
    ref_ok = True
    step = len(x_buf)
    with np.errstate(all="ignore"):  # NaN/Inf are counted, not warned about
        for start in range(0, info.numel, step):
            stop = min(start + step, info.numel)
            x = reader.read(info.name, start, stop, x_buf)
            values = x
            total = float(np.einsum("i->", x))  # the fastest float32 sum numpy has
            squares = _dot(np, x, x)
            if not (math.isfinite(total) and math.isfinite(squares)):
                nan = int(np.count_nonzero(np.isnan(x)))
                inf = int(np.count_nonzero(np.isinf(x)))
                stats.nan += nan
                stats.inf += inf
                if nan or inf:
                    values = x[np.isfinite(x)]
                wide = values.astype(np.float64)
                total = float(wide.sum())
                squares = _dot(np, wide, wide)
            count = values.size
            if count:
                chunk_mean = total / count
                chunk_m2 = squares - total * chunk_mean
                if chunk_m2 < 1e-3 * squares:  # the mean dominates (a layer norm): recompute about it
                    centered = scratch[:count]
                    np.subtract(values, chunk_mean, out=centered)
                    chunk_m2 = _dot(np, centered, centered)
                delta = chunk_mean - mean
                merged = n + count
                mean += delta * count / merged
                m2 += chunk_m2 + delta * delta * n * count / merged
                n = merged
                lo = min(lo, float(values.min()))
                hi = max(hi, float(values.max()))
            if reference is not None and y_buf is not None:
                y = reference.read(info.name, start, stop, y_buf)
                chunk_yy = _dot(np, y, y)
                if not math.isfinite(chunk_yy):
                    ref_ok = False
                elif ref_ok and stats.nonfinite == 0:
                    diff = scratch[: stop - start]
                    np.subtract(x, y, out=diff)
                    dd += _dot(np, diff, diff)
                    yy += chunk_yy
    reader.done(info.name)
    if reference is not None:
        reference.done(info.name)
    if n:
        stats.mean = mean
        stats.std = math.sqrt(max(m2, 0.0) / n)
        stats.norm = math.sqrt(max(m2, 0.0) + n * mean * mean)
        stats.min, stats.max = lo, hi
        stats.max_abs = max(abs(lo), abs(hi))
    if reference is not None and ref_ok and stats.nonfinite == 0:
        stats.ref_norm = math.sqrt(yy)
        xx = stats.norm**2
        stats.drift = math.sqrt(dd) / stats.ref_norm if stats.ref_norm > 0 else (0.0 if dd == 0 else math.inf)
        stats.cosine = _clamp((xx + yy - dd) / (2 * math.sqrt(xx * yy))) if xx > 0 and yy > 0 else None
    return stats, ref_ok, dd


def _dot(np: Any, a: "np.ndarray", b: "np.ndarray") -> float:
    """``a . b`` with numpy's own loop: ``np.dot`` would wake the BLAS thread pool, whose spinning
    threads take cores from the training loop (measured in ``benchmarks/checkpoint_health.py``)."""
    return float(np.einsum("i,i->", a, b))


def _flag(stats: TensorStats, info: TensorInfo, thresholds: HealthThresholds) -> None:
    if stats.nonfinite:
        stats.flags.append("nonfinite")
    if len(info.shape) >= 2 and stats.numel > 1 and stats.nonfinite < stats.numel and stats.min == stats.max:
        stats.flags.append("constant")
    if stats.max_abs > thresholds.max_abs_limit:
        stats.flags.append("huge")
    ref_rms = (stats.ref_norm or 0.0) / math.sqrt(max(stats.numel, 1))
    if stats.drift is not None and ref_rms >= thresholds.min_reference_rms and stats.drift > thresholds.tensor_drift_limit:
        stats.flags.append("moved")


def _report(
    weights: WeightFiles,
    ref_weights: WeightFiles | None,
    tensors: list[TensorStats],
    skipped: list[str],
    bytes_read: int,
    compare: _Comparison,
    notes: list[str],
    thresholds: HealthThresholds,
    seconds: float,
    previous_step: int | None,
) -> CheckpointReport:
    nonfinite = [t for t in tensors if t.nonfinite]
    anomalous = [t for t in tensors if set(t.flags) & {"constant", "huge", "moved"}]
    drift = compare.drift if ref_weights is not None else None
    score, factors = health_score(len(tensors), len(nonfinite), drift, len(anomalous), thresholds)
    status = status_of(score, bool(nonfinite), thresholds)
    issues, recommendations = _advice(tensors, nonfinite, drift, thresholds, previous_step, status)
    return CheckpointReport(
        path=str(weights.origin),
        format=weights.format,
        files=[str(f) for f in weights.files],
        reference=str(ref_weights.origin) if ref_weights is not None else None,
        reference_step=previous_step if ref_weights is not None else None,
        tensors=tensors,
        parameters=sum(t.numel for t in tensors),
        skipped=skipped,
        nan=sum(t.nan for t in tensors),
        inf=sum(t.inf for t in tensors),
        nonfinite_tensors=[t.name for t in nonfinite],
        weight_norm=math.sqrt(sum(t.norm**2 for t in tensors if not t.nonfinite)),
        drift=drift,
        cosine=compare.cosine if ref_weights is not None else None,
        score=round(score, 6),
        status=status,
        factors={k: round(v, 6) for k, v in factors.items()},
        issues=issues,
        recommendations=recommendations,
        notes=notes,
        bytes_read=bytes_read,
        seconds=seconds,
    )


def _advice(
    tensors: list[TensorStats],
    nonfinite: list[TensorStats],
    drift: float | None,
    thresholds: HealthThresholds,
    previous_step: int | None,
    status: str,
) -> tuple[list[str], list[str]]:
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
        advice.append("Healthy: safe to resume from.")
    return issues, advice


# -- alerts --------------------------------------------------------------------------------------
class CheckpointAlerts:
    """Turns successive reports into alerts, once per episode: raised when a checkpoint becomes
    unhealthy (again when it gets worse), cleared when a later one is healthy."""

    def __init__(self, thresholds: HealthThresholds = HealthThresholds()) -> None:
        self.thresholds = thresholds
        self._active: dict[str, str] = {}  # rule -> severity raised

    def update(self, report: CheckpointReport, step: int) -> list[Alert]:
        now = time.time()
        alerts: list[Alert] = []
        action = report.recommendations[0] if report.recommendations else None
        count = float(report.nan + report.inf)
        if report.nonfinite_tensors:
            if RULE_NONFINITE not in self._active:
                alerts.append(Alert(-1, now, step, RULE_NONFINITE, "critical",
                                    f"checkpoint at step {step}: {report.issues[0]}", "checkpoint/nan_count",
                                    count, 0.0, action))
                self._active[RULE_NONFINITE] = "critical"
        elif RULE_NONFINITE in self._active:
            del self._active[RULE_NONFINITE]
            alerts.append(Alert(-1, now, step, RULE_NONFINITE, "info", f"checkpoint at step {step} is finite again",
                                "checkpoint/nan_count", count, 0.0, None, "cleared"))
        unhealthy = report.status != "ok" and not report.nonfinite_tensors
        if unhealthy:
            severity = report.status
            previous = self._active.get(RULE_HEALTH)
            if previous is None or (previous == "warning" and severity == "critical"):
                threshold = self.thresholds.critical_below if severity == "critical" else self.thresholds.warning_below
                detail = "; ".join(report.issues) or "low health score"
                alerts.append(Alert(-1, now, step, RULE_HEALTH, severity,
                                    f"checkpoint at step {step} scores {report.score:.3f}: {detail}",
                                    "checkpoint/health_score", report.score, threshold, action))
                self._active[RULE_HEALTH] = severity
        elif RULE_HEALTH in self._active and report.status == "ok":
            del self._active[RULE_HEALTH]
            alerts.append(Alert(-1, now, step, RULE_HEALTH, "info",
                                f"checkpoint at step {step} is healthy again (score {report.score:.3f})",
                                "checkpoint/health_score", report.score, self.thresholds.warning_below, None, "cleared"))
        return alerts


# -- the monitor ---------------------------------------------------------------------------------
@dataclass
class _Job:
    step: int
    pin: "_Pin"


#: Reports a CheckpointMonitor keeps in memory (the oldest are dropped).
KEEP_REPORTS = 8


class CheckpointMonitor:
    """Analyzes each saved checkpoint on its own thread and logs the result to ``run``.

    ``submit(path, step)`` returns at once: it only hard-links the weight files into ``pin_dir``
    (default ``<run dir>/pins``), so that a trainer rotating its checkpoints (``save_total_limit``)
    cannot delete them before they are read. Links need the same file system; elsewhere the files
    are read in place (give a ``pin_dir`` on the checkpoints' file system to keep the protection).
    One analysis runs at a time and at most ``max_pending`` wait (past that the oldest waiting one
    is skipped, with a warning). The last checkpoint without NaN/Inf is the drift reference.
    ``close(timeout)`` waits for the pending analyses; integrations call it before finishing the run.
    """

    def __init__(
        self,
        run: "Run",
        *,
        thresholds: HealthThresholds = HealthThresholds(),
        max_pending: int = 2,
        compare_with_previous: bool = True,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
        pin_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.run = run
        self.pin_dir = Path(pin_dir) if pin_dir is not None else RunLayout(Path(run.dir), run.id).pins_dir
        self.thresholds = thresholds
        self.max_pending = max(1, max_pending)
        self.compare_with_previous = compare_with_previous
        self.chunk_elements = chunk_elements
        #: the latest reports by step (a few: each holds per-tensor stats, and the full record of
        #: every checkpoint is in the run's artifacts already)
        self.reports: dict[int, CheckpointReport] = {}
        self._alerts = CheckpointAlerts(thresholds)
        self._queue: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._reference: tuple[int, _Pin] | None = None
        self._failed_once = False

    def submit(self, path: str | os.PathLike[str], step: int) -> bool:
        """Queue the checkpoint at ``path`` (saved at ``step``); False when it is not queued."""
        if self._closed or not self.run.active:
            return False
        try:
            pin = _Pin.create(find_weight_files(path), step, self.pin_dir)
        except (CheckpointFormatError, OSError, ValueError) as exc:
            self._unreadable(step, exc)
            return False
        with self._cv:
            if len(self._queue) >= self.max_pending:
                skipped = self._queue.popleft()
                skipped.pin.release()
                log.warning("rldk_track: checkpoint health is behind; skipping the checkpoint of step %d", skipped.step)
            self._queue.append(_Job(int(step), pin))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="rldk-checkpoint-health", daemon=True)
                self._thread.start()
            self._cv.notify_all()
        return True

    def close(self, timeout: float | None = 300.0) -> bool:
        """Stop taking checkpoints and wait up to ``timeout`` seconds for the queued analyses;
        True when all finished (a late one is logged only if the run is still open)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            return not thread.is_alive()
        return True

    # -- worker thread -------------------------------------------------------------------
    def _work(self) -> None:
        lower_thread_priority()  # under CPU contention the training loop goes first
        try:  # once per monitor, here rather than a folder scan in every submit()
            _remove_stale_pins(self.pin_dir)
        except Exception as exc:  # housekeeping must not stop the analyses
            log.debug("rldk_track: could not clear stale checkpoint pins in %s: %s", self.pin_dir, exc)
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:
                    break
                job = self._queue.popleft()
            self._analyze(job)
        if self._reference is not None:
            self._reference[1].release()
            self._reference = None

    def _analyze(self, job: _Job) -> None:
        reference = self._reference if self.compare_with_previous else None
        try:
            report = analyze(job.pin.weights, reference[1].weights if reference else None,
                             thresholds=self.thresholds, chunk_elements=self.chunk_elements,
                             previous_step=reference[0] if reference else None)
        except Exception as exc:  # a checkpoint we cannot read is reported, never raised
            job.pin.release()
            self._unreadable(job.step, exc)
            return
        self.reports[job.step] = report
        while len(self.reports) > KEEP_REPORTS:
            del self.reports[next(iter(self.reports))]
        for record in [*report.to_records(job.step), *self._alerts.update(report, job.step)]:
            self.run.emit(record)
        if report.healthy:
            if reference is not None:
                reference[1].release()
            self._reference = (job.step, job.pin)
        else:
            job.pin.release()

    def _unreadable(self, step: int, exc: BaseException) -> None:
        if not self._failed_once:
            self._failed_once = True
            log.warning("rldk_track: checkpoint health could not read the checkpoint of step %d: %s", step, exc)
        self.run.alert(RULE_UNREADABLE, f"checkpoint at step {step} could not be analyzed: {exc}",
                       severity="warning", step=step, action="check that the weights were written completely")


class _Pin:
    """Hard links to a checkpoint's weight files in a folder of ``root``, so they outlive a trainer
    deleting the checkpoint (``save_total_limit``). Where linking fails (another file system, no
    permission) the original files are used as they are."""

    _reported_in_place = False

    def __init__(self, weights: WeightFiles, folder: Path | None) -> None:
        self.weights = weights
        self._folder = folder

    @classmethod
    def create(cls, weights: WeightFiles, step: int, root: Path) -> "_Pin":
        folder = root / f"{socket.gethostname()}-{os.getpid()}-{step}-{uuid.uuid4().hex[:6]}"
        try:
            folder.mkdir(parents=True)
            for source in (*weights.files, *weights.extra):
                os.link(source, folder / source.name)
        except OSError as exc:
            if not cls._reported_in_place:
                cls._reported_in_place = True
                log.info("rldk_track: cannot hard-link %s into %s (%s); checkpoints are read in place, so one "
                         "deleted early by the trainer is not analysed (pass pin_dir= on their file system)",
                         weights.origin, root, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return cls(weights, None)
        files = tuple(folder / f.name for f in weights.files)
        return cls(WeightFiles(weights.origin, files, weights.format), folder)

    def release(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            try:
                self._folder.parent.rmdir()  # only when empty
            except OSError:
                pass
            self._folder = None


def _remove_stale_pins(root: Path) -> None:
    """Pins left by a process of this host that died (they would hold a checkpoint's disk space)."""
    if not root.is_dir():
        return
    host = socket.gethostname()
    for folder in root.iterdir():
        parts = folder.name.rsplit("-", 3)  # host-pid-step-random
        if len(parts) == 4 and parts[0] == host and parts[1].isdigit() and not process_alive(int(parts[1])):
            shutil.rmtree(folder, ignore_errors=True)


# -- helpers -------------------------------------------------------------------------------------
def _clamp(value: float) -> float:
    return max(-1.0, min(1.0, value))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6f}"


def _finite_json(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become strings ("nan", "inf") so every tracker takes it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value

