"""One writer per run: an exclusive lock on ``<dir>/events/<run_id>.lock`` while a process records it.

Two processes given one run id (a relaunched job while the old one still runs, a misconfigured
launcher) would both append to one event log and advance one set of cursors. ``init`` therefore
takes ``fcntl.flock`` on the run's lock file for the run's life, and a second ``init`` of that run
fails at once, naming the holder's pid and host (written into the file). ``rldk-track sync``
takes the same lock while it writes to a run, so it skips a live run. The kernel drops the lock
with the process, so a run resumed after a crash (SIGKILL, OOM) gets it; a forked child closes its
copy (:meth:`RunLock.close`) so that it does not keep the lock of a parent that died.

A file system without ``flock`` (some Lustre mounts) gives no lock: one warning, and the run goes
on unprotected, as before this lock existed.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import threading

from rldk_track.layout import RunLayout

log = logging.getLogger("rldk_track")


class RunLocked(RuntimeError):
    """Another process (named in ``holder``) records this run now."""

    def __init__(self, layout: RunLayout, holder: str) -> None:
        self.holder = holder
        super().__init__(
            f"rldk_track: run {layout.run_id} is being recorded by {holder} (lock {layout.lock}); two "
            "writers would corrupt its event log and trackers. Give this process another run_id (or "
            "unset RLDK_RUN_ID), or stop that process first: a run resumed after it ends gets the lock."
        )


class RunLock:
    """The held lock of one run (see the module docstring); :meth:`acquire` takes it."""

    def __init__(self, layout: RunLayout, fd: int | None) -> None:
        self.layout = layout
        self._fd = fd
        self._mutex = threading.Lock()

    @classmethod
    def acquire(cls, layout: RunLayout) -> "RunLock":
        """Take the run's lock at once, or raise :class:`RunLocked` naming the holder."""
        layout.events_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited across exec
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                log.warning("rldk_track: cannot lock %s (%s); another process given this run id "
                            "would not be stopped", layout.lock, exc)
                return cls(layout, None)
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLocked(layout, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        return cls(layout, fd)

    def release(self) -> None:
        """Let another process record the run (the run ended here). Idempotent."""
        with self._mutex:
            fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)  # also for a forked child's copy of the descriptor
            os.close(fd)

    def close(self) -> None:
        """Drop this process's descriptor without unlocking the parent's: for a forked child,
        whose descriptor shares the parent's lock. Takes no lock (see :meth:`Run.detach`)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def live_or_locked(layout: RunLayout, force: bool = False) -> "RunLock | str":
    """For ``rldk-track sync``: the run's lock, held while sync writes to the run, or (the run is
    live) why it is skipped. With ``force`` a live run is not skipped (a lock that holds nothing
    is returned)."""
    try:
        return RunLock.acquire(layout)
    except RunLocked as live:
        if force:
            return RunLock(layout, None)
        return f"the run is live: recorded by {live.holder} (--force syncs it anyway)"
