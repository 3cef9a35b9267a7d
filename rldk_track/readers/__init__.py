"""Readers: turn what a tracker stored back into plain Python data (for tests, compare and sync
checks), each reading the tracker's own on-disk or server format."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rldk_track.readers.runset import RunSet


def load_runs(sources: Any, **kwargs: Any) -> "RunSet":
    """Read runs from any tracker into one :class:`~rldk_track.readers.runset.RunSet` (see
    :func:`rldk_track.readers.sources.load_runs`); pandas is imported on first call, not here."""
    from rldk_track.readers.sources import load_runs as _load_runs

    return _load_runs(sources, **kwargs)
