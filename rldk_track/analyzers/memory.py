"""Memory verdict of a run: the peaks the system sampler saw, judged on the fullest GPU (or, with
none, the process's RSS against the machine's RAM), and the records that say what to change.

Pure: the sampler (``rldk_track.producers.system_sampler``) collects :class:`Peak` values on its
own thread and hands them here at the end of the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from rldk_track.records import Alert, Record, Summary

GB = 1e9
#: Fraction of a GPU's memory above which we call it close to out-of-memory.
NEAR_OOM = 0.95
#: Fraction of memory a recommendation aims for when there is room to spare.
TARGET_FILL = 0.9
RULE_PRESSURE = "memory_pressure"
RULE_HEADROOM = "memory_headroom"


@dataclass
class Peak:
    """The highest memory seen (bytes), per GPU and for the process."""

    gpu: list[float] = field(default_factory=list)
    rss: float = 0.0
    samples: int = 0

    def add(self, gpu: Sequence[float], rss: float) -> None:
        if len(self.gpu) < len(gpu):
            self.gpu.extend([0.0] * (len(gpu) - len(self.gpu)))
        for i, used in enumerate(gpu):
            self.gpu[i] = max(self.gpu[i], used)
        self.rss = max(self.rss, rss)
        self.samples += 1


@dataclass(frozen=True)
class Device:
    """A GPU as the recommendation sees it."""

    name: str  # gpu0
    total: float  # bytes


@dataclass(frozen=True)
class MemoryAdvice:
    """The memory verdict: what was seen, what to do (may be empty) and how loud to say it."""

    finding: str
    action: str = ""
    severity: str | None = None  # None: nothing to change; "info": room to spare; "warning": near OOM
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None

    @property
    def text(self) -> str:
        return f"{self.finding} {self.action}".strip()


def memory_recommendation(
    devices: Sequence[Device],
    overall: Peak,
    stages: dict[str, Peak],
    ram_total: float = 0.0,
) -> MemoryAdvice:
    """Judge memory on the fullest GPU: above ``NEAR_OOM`` of its memory, halve the per-device
    batch and double gradient accumulation; when ``TARGET_FILL / fill >= 2``, the batch can grow
    about that many times (a lower bound: weights and optimizer state do not grow with it).
    Without a GPU, the process's peak RSS against the machine's RAM."""
    if not overall.samples:
        return MemoryAdvice("No memory samples were taken.")
    if not devices or not overall.gpu:
        finding = f"No GPU seen (CPU only): peak process memory {overall.rss / GB:.2f} GB"
        if ram_total:
            finding += f" of {ram_total / GB:.1f} GB RAM"
        finding += _stage_list(stages, lambda p: p.rss) + "."
        fill = overall.rss / ram_total if ram_total else 0.0
        if fill >= NEAR_OOM:
            return MemoryAdvice(finding, "Close to running out of RAM: lower the batch size.", "warning",
                                "system/proc_rss_gb", overall.rss / GB, NEAR_OOM * ram_total / GB)
        return MemoryAdvice(finding)
    fill, index = max((overall.gpu[i] / d.total if d.total else 0.0, i) for i, d in enumerate(devices) if i < len(overall.gpu))
    device = devices[index]
    worst = max(stages, key=lambda s: _at(stages[s].gpu, index), default=None)
    during = f" during '{worst}'" if worst and _at(stages[worst].gpu, index) >= overall.gpu[index] else ""
    finding = (f"{device.name} peaked at {fill:.0%} of {device.total / GB:.1f} GB{during}"
               f"{_stage_list(stages, lambda p: _at(p.gpu, index))}.")
    metric = f"system/{device.name}/mem_pct"
    if fill >= NEAR_OOM:
        return MemoryAdvice(finding, "Close to out-of-memory: halve the per-device batch size and double "
                            "gradient_accumulation_steps (same effective batch), or enable gradient checkpointing.",
                            "warning", metric, 100 * fill, 100 * NEAR_OOM)
    scale = TARGET_FILL / fill if fill > 0 else 0.0
    if scale >= 2:
        return MemoryAdvice(finding, f"Room to spare: the per-device batch size can grow about {int(scale)}x (a lower "
                            "bound: weights and optimizer state do not grow with the batch); divide "
                            "gradient_accumulation_steps by the same factor to keep the effective batch.",
                            "info", metric, 100 * fill, 100 * TARGET_FILL / 2)
    return MemoryAdvice(finding, "Memory is well used; no change needed.")


def _at(values: Sequence[float], index: int) -> float:
    return values[index] if index < len(values) else 0.0


def _stage_list(stages: dict[str, Peak], value: Any) -> str:
    if not stages:
        return ""
    parts = ", ".join(f"{name} {value(peak) / GB:.2f} GB" for name, peak in sorted(stages.items()))
    return f" (peak by stage: {parts})"


def memory_summary(
    devices: Sequence[Device],
    overall: Peak,
    stages: dict[str, Peak],
    advice: MemoryAdvice,
    step: int,
) -> list[Record]:
    """What a run logs for the memory verdict: a ``Summary`` with the peaks (overall, per GPU, per
    stage) and the recommendation text, plus an ``Alert`` at ``step`` when ``advice`` asks for a
    change (``memory_pressure`` warning, ``memory_headroom`` info)."""
    now = time.time()
    values: dict[str, Any] = {"system/memory_recommendation": advice.text}
    if overall.samples:
        values["system/peak_proc_rss_gb"] = round(overall.rss / GB, 4)
    for i, device in enumerate(devices):
        values[f"system/{device.name}/mem_total_gb"] = round(device.total / GB, 4)
        values[f"system/{device.name}/peak_mem_gb"] = round(_at(overall.gpu, i) / GB, 4)
    for name, peak in sorted(stages.items()):
        if not peak.samples:
            continue
        values[f"system/stage/{name}/peak_proc_rss_gb"] = round(peak.rss / GB, 4)
        for i, device in enumerate(devices):
            values[f"system/stage/{name}/{device.name}_peak_mem_gb"] = round(_at(peak.gpu, i) / GB, 4)
    records: list[Record] = [Summary(-1, now, values)]
    if advice.severity is not None:
        rule = RULE_PRESSURE if advice.severity == "warning" else RULE_HEADROOM
        records.append(Alert(-1, now, step, rule, advice.severity, advice.finding, advice.metric,
                             advice.value, advice.threshold, advice.action))
    return records
