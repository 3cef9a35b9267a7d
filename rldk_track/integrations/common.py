"""What every integration does the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rldk_track import backends as backend_registry
from rldk_track.run import BackendSpec, parse_backends

if TYPE_CHECKING:
    from rldk_track.system import SystemSampler


def check_backends(backend: BackendSpec) -> None:
    """Resolve every backend ``backend`` names, so that a misspelled name or a missing extra
    fails when the integration is set up, not when training first logs (after the model loaded),
    where an integration can only report it and train on unrecorded."""
    for name in parse_backends(backend):
        if name != backend_registry.JSONL:
            backend_registry.resolve(name)


def system_sampler(system_metrics: bool | float | None) -> "SystemSampler | None":
    """The sampler an integration's ``system_metrics`` asks for: every 10 s (True), every that
    many seconds (a number), or none (False/None)."""
    if system_metrics is None or system_metrics is False:
        return None
    from rldk_track.system import SystemSampler

    return SystemSampler() if system_metrics is True else SystemSampler(interval_s=float(system_metrics))
