"""Process-wide run lifecycle: finish live runs at interpreter exit, ahead of tracker libraries.

``atexit`` runs hooks last-registered-first. Tracker libraries register their own teardown when
they start (W&B inside its first ``wandb.init``), which happens on a backend worker after the run
was created; :func:`finish_runs_first` re-registers our hook after every backend start so live
runs deliver their last records and their end before any tracker library shuts itself down.
SIGTERM (a scheduler pre-empting the job) ends live runs as ``killed`` the same way.

Nothing here changes the process at import: the exit-status hooks (``sys.excepthook`` and
``sys.exit``, each chained to the one in place, and the ``exit``/``quit`` builtins) and the fork
hook are installed when the first run starts (:func:`track`). ``atexit`` hooks cannot see the exit
status, so ``sys.exit(n)`` and ``exit(n)`` note it on their way out: a script that calls
``sys.exit(3)`` ends its run as ``failed``. A bare ``raise SystemExit(3)`` outside ``with init()``
is not seen: Python hands no hook the exception or the exit code before ``atexit`` runs, and
tracing the main module's frames for it would slow every call (docs/reliability.md).
"""

from __future__ import annotations

import _sitebuiltins
import atexit
import builtins
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from rldk_track.run import Run

#: Strong references: a run held only by a local of ``main()`` is collected before ``atexit`` runs,
#: and a run that was never finished must still end (run_end, tracker status, last points).
_live: "set[Run]" = set()
_lock = threading.Lock()
_exit_status = "success"
_previous_excepthook: Any = None  # the hook in place when the first run started
_previous_exit: Any = None  # sys.exit as it was when the first run started
_previous_sigterm: Any = None
_before_finish: "list[Callable[[float], None]]" = []


def track(run: "Run") -> None:
    """Finish ``run`` at interpreter exit (or on SIGTERM) unless it finishes before."""
    with _lock:
        _live.add(run)
    _install_process_hooks()
    finish_runs_first()
    _finish_runs_on_sigterm()


def untrack(run: "Run") -> None:
    with _lock:
        _live.discard(run)


def forget(run: "Run") -> None:
    """``untrack`` without the lock, for :meth:`Run.detach` (a forked child may have copied the
    lock held by a thread it does not have); one ``set.discard`` is atomic under the GIL."""
    _live.discard(run)


def finish_runs_first() -> None:
    """Move our exit hook to the front of the exit queue (called after a tracker library starts)."""
    atexit.unregister(_finish_live_runs)
    atexit.register(_finish_live_runs)


def exit_status() -> str:
    """How the process is ending: ``killed`` after Ctrl-C or SIGTERM, ``failed`` after another
    uncaught exception in the main thread or ``sys.exit`` with a non-zero status, else
    ``success``."""
    return _exit_status


def exit_timeout() -> float:
    """Seconds a run may take to finish at interpreter exit: ``RLDK_EXIT_TIMEOUT``, default 30."""
    return float(os.environ.get("RLDK_EXIT_TIMEOUT", "30"))


def before_runs_finish(callback: "Callable[[float], None]") -> None:
    """Call ``callback(timeout)`` at interpreter exit (and on SIGTERM) just before live runs are
    finished: for a producer that still holds records for its run (an integration's buffered
    samples, checkpoint analyses in flight). Registering it with ``atexit`` instead would not do:
    :func:`finish_runs_first` moves the runs' end ahead of every hook registered before a backend
    started."""
    with _lock:
        if callback not in _before_finish:
            _before_finish.append(callback)


def forget_before_runs_finish(callback: "Callable[[float], None]") -> None:
    with _lock:
        if callback in _before_finish:
            _before_finish.remove(callback)


def _finish_live_runs(timeout: float | None = None) -> None:
    timeout = exit_timeout() if timeout is None else timeout
    with _lock:
        callbacks = list(_before_finish)
    for callback in reversed(callbacks):  # last registered first, as atexit does
        try:
            callback(timeout)
        except Exception as exc:  # never keep a run from ending
            sys.stderr.write(f"rldk_track: an exit hook failed: {type(exc).__name__}: {exc}\n")
    with _lock:
        runs = list(_live)
    for run in runs:
        run.finish(exit_status(), timeout=timeout)


def status_for(exc_type: type[BaseException] | None, exc: BaseException | None = None) -> str:
    """A run's status when it ends by ``exc_type``: none is ``success``, Ctrl-C ``killed``,
    ``SystemExit`` as its code says (:func:`status_for_exit`; given no ``exc``, ``failed``),
    anything else ``failed``."""
    if exc_type is None:
        return "success"
    if isinstance(exc, SystemExit):
        return status_for_exit(exc.code)
    return "killed" if issubclass(exc_type, KeyboardInterrupt) else "failed"


def status_for_exit(code: Any) -> str:
    """The status of ``sys.exit(code)``: ``success`` for ``None``/0, else ``failed`` (a message
    or any other value exits with status 1)."""
    return "success" if code is None or code == 0 else "failed"


def _note_code(code: Any) -> None:
    """Note the status the process exits with by ``code`` (from the main thread: elsewhere
    ``SystemExit`` ends only that thread)."""
    global _exit_status
    if threading.current_thread() is threading.main_thread():
        _exit_status = status_for_exit(code)


def _note_exit(code: Any = None) -> None:
    """``sys.exit`` that first notes the status it exits with."""
    _note_code(code)
    _previous_exit(code)


class _NotingQuitter(_sitebuiltins.Quitter):
    """The ``exit``/``quit`` builtins (``site``'s ``Quitter``: same repr, same closing of stdin)
    that first note the status they exit with."""

    def __call__(self, code: Any = None) -> None:
        _note_code(code)
        super().__call__(code)


def _note_uncaught(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    global _exit_status
    _exit_status = status_for(exc_type)
    _previous_excepthook(exc_type, exc, tb)


def _finish_runs_on_sigterm() -> None:
    """A scheduler pre-empting the job sends SIGTERM, whose default action skips ``atexit``:
    end live runs as ``killed`` first (bounded by ``RLDK_SIGTERM_TIMEOUT``, default 10 s, well
    inside the usual grace period), then let the signal do what it would have done. Installed
    only from the main thread and only where nobody has set a SIGTERM handler."""
    global _previous_sigterm
    if _previous_sigterm is not None or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    _previous_sigterm = signal.SIG_DFL
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: Any) -> None:
    global _exit_status
    _exit_status = "killed"
    _finish_live_runs(float(os.environ.get("RLDK_SIGTERM_TIMEOUT", "10")))
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _disable_in_forked_child() -> None:
    """A forked child (a DataLoader worker) has no log thread: its copies of runs are detached."""
    for run in list(_live):
        run.detach()
    _live.clear()
    _before_finish.clear()


def _install_process_hooks() -> None:
    """Note the exit status of an uncaught exception and of ``sys.exit``, and detach runs in
    forked children: once per process, when its first run starts (not at ``import rldk_track``)."""
    global _previous_excepthook, _previous_exit
    with _lock:
        if _previous_excepthook is not None:
            return
        _previous_excepthook = sys.excepthook
        sys.excepthook = _note_uncaught
        _previous_exit = sys.exit
        sys.exit = _note_exit
        for name in ("exit", "quit"):  # only site's own: a shell's (IPython's) is left as it is
            quitter = getattr(builtins, name, None)
            if type(quitter) is _sitebuiltins.Quitter:
                setattr(builtins, name, _NotingQuitter(quitter.name, quitter.eof))
    os.register_at_fork(after_in_child=_disable_in_forked_child)
