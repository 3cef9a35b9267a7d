"""Backends by name: the built-in trackers plus any registered through the
``rldk_track.backends`` entry-point group (``mytracker = "my_pkg.module:MyBackend"``).

The local event log is not a backend (:mod:`rldk_track.eventlog`); its name ``"jsonl"`` is
accepted where backends are named (``rldk_track.run.parse_backends`` drops it) and listed by
neither :func:`available` nor :func:`resolve`."""

from __future__ import annotations

import importlib
import importlib.util

from rldk_track import eventlog
from rldk_track.backends.base import Backend, BackendUnavailable, CannotReopen, RejectedError, Resume, RunInfo

__all__ = ["Backend", "BackendUnavailable", "CannotReopen", "RejectedError", "Resume", "RunInfo", "register", "resolve", "available"]

_BUILTIN = {
    "mlflow": "rldk_track.backends.mlflow:MlflowBackend",
    "wandb": "rldk_track.backends.wandb:WandbBackend",
    "tensorboard": "rldk_track.backends.tensorboard:TensorBoardBackend",
    "trackio": "rldk_track.backends.trackio:TrackioBackend",
}
_registered: dict[str, type[Backend] | str] = {}


def register(name: str, backend: type[Backend] | str) -> None:
    """Make ``backend`` (a class or ``"module:Class"``) available as ``init(backend=name)``."""
    _registered[name] = backend


def _targets() -> dict[str, type[Backend] | str]:
    from importlib.metadata import entry_points  # ~25 ms: only when a backend is resolved

    targets: dict[str, type[Backend] | str] = dict(_BUILTIN)
    for ep in entry_points(group="rldk_track.backends"):
        targets.setdefault(ep.name, ep.value)
    targets.update(_registered)
    return targets


def available() -> list[str]:
    """Every tracker backend's name (``init`` also accepts ``"jsonl"``, the event log)."""
    return sorted(_targets())


def resolve(name: str) -> type[Backend]:
    """The backend class for ``name``, failing fast with a fix when it cannot be used."""
    targets = _targets()
    if name == eventlog.NAME and name not in targets:
        raise ValueError(f"{name!r} is the local event log, not a tracker backend: it needs no class "
                         "and is always on (rldk_track.eventlog)")
    if name not in targets:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(available())} "
                         "(or 'jsonl': the local event log alone)")
    target = targets[name]
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module_name), attr)
    missing = [mod for mod in target.requires if importlib.util.find_spec(mod) is None]
    if missing:
        extra = target.extra or name
        raise BackendUnavailable(
            f"backend {name!r} needs {', '.join(missing)}: pip install 'rldk-track[{extra}]'"
        )
    return target
