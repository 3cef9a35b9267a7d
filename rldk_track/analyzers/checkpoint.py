"""Checkpoint health: is a saved checkpoint safe to resume from or deploy, and how far did it move?

``analyze(path, reference=None)`` streams the checkpoint's tensors and measures each one
(``checkpoint_scan``: memory is bounded by a chunk of elements, never the model), judges them
(``checkpoint_score``: flags, a health score in [0, 1], a status, issues and recommendations) and
returns a :class:`CheckpointReport` (``checkpoint_report``), whose ``to_records(step)`` are what a
run logs. :class:`~rldk_track.analyzers.checkpoint_alerts.CheckpointAlerts` turns successive
reports into alerts. All of it is pure: the thread that analyzes each save of a training run and
logs the records is :class:`rldk_track.producers.CheckpointMonitor`.
"""

from __future__ import annotations

import math
import os
import time

from rldk_track.analyzers.checkpoint_files import (
    DEFAULT_CHUNK_ELEMENTS,
    CheckpointFormatError,
    CheckpointReader,
    WeightFiles,
    find_weight_files,
)
from rldk_track.analyzers.checkpoint_report import CheckpointReport
from rldk_track.analyzers.checkpoint_scan import Comparison, TensorStats, scan
from rldk_track.analyzers.checkpoint_score import HealthThresholds, advice, flag_anomalies, health_score, status_of

__all__ = [
    "CheckpointFormatError",
    "CheckpointReport",
    "HealthThresholds",
    "TensorStats",
    "analyze",
    "health_score",
    "status_of",
]


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
            tensors, skipped, bytes_read, compare = scan(current, ref_reader, chunk_elements)
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


def _report(
    weights: WeightFiles,
    ref_weights: WeightFiles | None,
    tensors: list[TensorStats],
    skipped: list[str],
    bytes_read: int,
    compare: Comparison,
    notes: list[str],
    thresholds: HealthThresholds,
    seconds: float,
    previous_step: int | None,
) -> CheckpointReport:
    for tensor in tensors:
        flag_anomalies(tensor, thresholds)
    nonfinite = [t for t in tensors if t.nonfinite]
    anomalous = [t for t in tensors if set(t.flags) & {"constant", "huge", "moved"}]
    drift = compare.drift if ref_weights is not None else None
    score, factors = health_score(len(tensors), len(nonfinite), drift, len(anomalous), thresholds)
    status = status_of(score, bool(nonfinite), thresholds)
    issues, recommendations = advice(tensors, nonfinite, drift, thresholds, previous_step, status)
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
