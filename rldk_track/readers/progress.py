"""Progress bars for readers that fetch many runs or histories (tqdm, when it is installed)."""

from __future__ import annotations

from typing import Iterable


def progress_bar(iterable: Iterable, total: int | None, desc: str, enabled: bool | None) -> Iterable:
    """``iterable`` wrapped in a tqdm bar on stderr (when tqdm is installed and ``enabled``;
    ``None`` means: only on a terminal)."""
    if enabled is False:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="", leave=False, disable=None if enabled is None else not enabled)
