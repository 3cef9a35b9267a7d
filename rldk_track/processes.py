"""Whether a process recorded in a file (an event log's ``run_start``, a checkpoint pin's name)
still runs on this host: the one liveness check shared by ``sync`` and the checkpoint pins."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def process_alive(pid: int, host: str | None = None) -> bool:
    """True when ``pid`` runs on this host. A process of another ``host`` is never judged alive
    here (it cannot be seen), nor is a pid that is not positive. An exited child its parent has
    not reaped yet (a zombie) answers ``kill(pid, 0)`` but is dead."""
    if (host is not None and host != socket.gethostname()) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return True
