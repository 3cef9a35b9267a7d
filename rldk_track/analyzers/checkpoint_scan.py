"""Checkpoint health, the measuring part: one streaming pass over a checkpoint's tensors.

:func:`scan` reads each floating-point tensor chunk by chunk (through ``checkpoint_files``: memory
is bounded by one chunk of elements, never the model) and measures, per tensor, NaN/Inf counts,
L2 norm, mean, std, min/max and max |w|; against a reference checkpoint, the relative L2 drift
``||w - w_ref|| / ||w_ref||`` and the cosine of ``w`` and ``w_ref``, per tensor and summed over
the model (:class:`Comparison`). Judging what it measured is ``checkpoint_score``'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rldk_track.analyzers.checkpoint_files import CheckpointReader, TensorInfo

if TYPE_CHECKING:
    import numpy as np


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
    #: what is wrong with it, set by ``checkpoint_score.flag_anomalies``
    flags: list[str] = field(default_factory=list)

    @property
    def nonfinite(self) -> int:
        return self.nan + self.inf


class Comparison:
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
        """What the report's notes say about how the two checkpoints' tensors matched."""
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


def scan(
    current: CheckpointReader,
    reference: CheckpointReader | None,
    chunk: int,
) -> tuple[list[TensorStats], list[str], int, Comparison]:
    """Every floating-point tensor of ``current``, one chunk of ``chunk`` values at a time (with
    ``reference``, the same chunk of its tensor of that name and shape): the stats, the tensors
    skipped (not floating point), the bytes read, and the sums over the compared tensors."""
    import numpy as np

    x_buf = np.empty(chunk, dtype=np.float32)
    y_buf = np.empty(chunk, dtype=np.float32) if reference is not None else None
    scratch = np.empty(chunk, dtype=np.float32)
    compare = Comparison()
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


def _clamp(value: float) -> float:
    return max(-1.0, min(1.0, value))
