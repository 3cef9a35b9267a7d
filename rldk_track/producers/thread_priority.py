"""The CPU priority of the producers' background threads."""

from __future__ import annotations

import os
import sys
import threading


def lower_thread_priority(nice: int = 19) -> None:
    """Give the calling (background) thread the lowest CPU priority, so that under contention the
    training threads run first; an idle core still runs it at full speed. Linux only, where the
    nice value belongs to the thread; elsewhere (a thread id is not a process id) a no-op."""
    if sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (OSError, AttributeError):
        pass
