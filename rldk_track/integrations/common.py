"""What every integration does the same way."""

from __future__ import annotations

from rldk_track import backends as backend_registry
from rldk_track.run import BackendSpec, parse_backends


def check_backends(backend: BackendSpec) -> None:
    """Resolve every backend ``backend`` names, so that a misspelled name or a missing extra
    fails when the integration is set up, not when training first logs (after the model loaded),
    where an integration can only report it and train on unrecorded."""
    for name in parse_backends(backend):
        if name != backend_registry.JSONL:
            backend_registry.resolve(name)
