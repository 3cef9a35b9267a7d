"""What every integration does the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rldk_track.producers.system_sampler import SystemSampler


def system_sampler(system_metrics: bool | float | None) -> "SystemSampler | None":
    """The sampler an integration's ``system_metrics`` asks for: every 10 s (True), every that
    many seconds (a number), or none (False/None)."""
    if system_metrics is None or system_metrics is False:
        return None
    from rldk_track.producers.system_sampler import SystemSampler

    return SystemSampler() if system_metrics is True else SystemSampler(interval_s=float(system_metrics))
