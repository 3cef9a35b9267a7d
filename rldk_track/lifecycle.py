"""Process-wide run lifecycle: finish live runs at interpreter exit, ahead of tracker libraries.

``atexit`` runs hooks last-registered-first. Tracker libraries register their own teardown when
they start (W&B inside its first ``wandb.init``), which happens on a backend worker after the run
was created; :func:`finish_runs_first` re-registers our hook after every backend start so live
runs deliver their last records and their end before any tracker library shuts itself down.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rldk_track.run import Run

_live: "weakref.WeakSet[Run]" = weakref.WeakSet()
_lock = threading.Lock()
_uncaught_exception = threading.Event()
_previous_excepthook = sys.excepthook


def track(run: "Run") -> None:
    """Finish ``run`` at interpreter exit unless it finishes before."""
    with _lock:
        _live.add(run)
    finish_runs_first()


def untrack(run: "Run") -> None:
    with _lock:
        _live.discard(run)


def finish_runs_first() -> None:
    """Move our exit hook to the front of the exit queue (called after a tracker library starts)."""
    atexit.unregister(_finish_live_runs)
    atexit.register(_finish_live_runs)


def exit_status() -> str:
    """``failed`` once an exception went uncaught in the main thread, else ``success``."""
    return "failed" if _uncaught_exception.is_set() else "success"


def _finish_live_runs() -> None:
    timeout = float(os.environ.get("RLDK_EXIT_TIMEOUT", "30"))
    with _lock:
        runs = list(_live)
    for run in runs:
        run.finish(exit_status(), timeout=timeout)


def _note_uncaught(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    _uncaught_exception.set()
    _previous_excepthook(exc_type, exc, tb)


def _disable_in_forked_child() -> None:
    """A forked child (a DataLoader worker) has no log thread: its copies of runs go quiet."""
    for run in list(_live):
        run._go_quiet()
    _live.clear()


sys.excepthook = _note_uncaught
os.register_at_fork(after_in_child=_disable_in_forked_child)
