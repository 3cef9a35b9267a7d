"""Checkpoint health, the reporting part: what ``analyze`` found, and the records a run logs for it."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from rldk_track.analyzers.checkpoint_scan import TensorStats
from rldk_track.analyzers.checkpoint_score import SAFE_TO_RESUME
from rldk_track.records import Artifact, CheckpointHealth, Metrics, Record, Tags, checkpoint_folder

#: The tag holding the latest checkpoint's status (ok | warning | critical).
TAG = "rldk.checkpoint.health"
#: How many of the most-moved tensors a report lists.
TOP_DRIFT = 5


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

    def advice(self) -> tuple[list[str], list[str]]:
        """The recommendations and notes as of now: a checkpoint deleted since it was read (a
        trainer's ``save_total_limit`` rotates old ones away, sometimes while the analysis runs)
        is not offered as one to resume from."""
        if Path(self.path).exists():
            return self.recommendations, self.notes
        gone = (f"`{self.path}` is no longer on disk (deleted after it was read, e.g. by `save_total_limit`): "
                "its health is as it was; resume from a checkpoint that is still kept.")
        return [r for r in self.recommendations if r != SAFE_TO_RESUME], [*self.notes, gone]

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
        recommendations, notes = self.advice()
        for heading, items in (("Issues", self.issues), ("Recommendations", recommendations), ("Notes", notes)):
            if items:
                lines += [f"## {heading}", "", *(f"- {item}" for item in items), ""]
        return "\n".join(lines)

    def to_records(self, step: int) -> list[Record]:
        """The records a run logs for this checkpoint at ``step`` (alerts come from
        :class:`~rldk_track.analyzers.checkpoint_alerts.CheckpointAlerts`, which remembers what was
        already raised).

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
                             tuple(self.advice()[0])),
            Metrics(-1, now, step, metrics),
            Tags(-1, now, {TAG: self.status}),
            Artifact(-1, now, f"{folder}/report.json", data=json.dumps(self.to_dict(), indent=1).encode()),
            Artifact(-1, now, f"{folder}/health.md", data=self.to_markdown(step).encode()),
        ]


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

