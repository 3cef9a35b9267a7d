"""Replay event logs into trackers: crash recovery, offline runs, and "send this run to W&B too".

Each backend's cursor file says how far it got; sync delivers the rest through the same
:class:`~rldk_track.dispatch.BackendWorker` a live run uses, so a second sync adds nothing.
A run whose process is gone without a ``run_end`` line is ended as ``killed`` (recorded in its
event log first, so every tracker agrees).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from rldk_track import backends as backend_registry
from rldk_track import eventlog
from rldk_track.backends.base import RunInfo
from rldk_track.eventlog import EventLogWriter, summarize
from rldk_track.dispatch import BackendWorker
from rldk_track.layout import RunLayout, event_logs
from rldk_track.processes import process_alive
from rldk_track.records import RunEnd
from rldk_track.runlock import live_or_locked

log = logging.getLogger("rldk_track")


@dataclass
class SyncResult:
    run_id: str
    backend: str
    delivered: int
    complete: bool
    skipped: str = ""


def sync(
    source: str | os.PathLike[str],
    to: Sequence[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    timeout: float = 600.0,
    force: bool = False,
    from_start: bool = False,
) -> list[SyncResult]:
    """Deliver every event log under ``source`` (a run dir or one ``.jsonl``) to its trackers.

    ``to`` names the backends (default: the ones each run was started with); ``options`` adds
    or overrides per-backend options (e.g. another ``tracking_uri``). A run whose process is
    still alive is skipped unless ``force``. ``from_start`` ignores the recorded delivery
    positions and replays whole logs (e.g. into another MLflow server via ``options``).
    ``jsonl`` among ``to`` names the event log itself, the source: there is nothing to deliver
    (an unfinished run is still ended as ``killed`` in it) and its result says so.
    """
    results: list[SyncResult] = []
    for path in event_logs(Path(source)):
        summary = summarize(path)
        start = summary.start
        if start is None:
            log.warning("rldk_track: %s has no run_start line; not an rldk_track event log", path)
            continue
        names = list(to) if to else list(start.backends)
        if not names:
            continue
        layout = RunLayout.from_event_log(path)
        lock = live_or_locked(layout, force)  # the run's lock while sync writes to it (runlock.py)
        if isinstance(lock, str):
            results += [SyncResult(start.run_id, n, 0, False, lock) for n in names]
            continue
        # Read again under the lock: a run that finished after the read above wrote its own
        # run_end, and its last records, which a run_end(killed) must not follow.
        summary = summarize(path)
        start = summary.start or start
        if start.pid != os.getpid() and process_alive(start.pid, start.host) and not summary.ended and not force:
            lock.release()  # a log written before runs were locked
            results += [SyncResult(start.run_id, n, 0, False, f"process {start.pid} is still running") for n in names]
            continue
        if not summary.ended:
            writer = EventLogWriter(path, start.run_id)
            summary.last_seq += 1
            writer.append([RunEnd(summary.last_seq, time.time(), "killed")])
            writer.close()
            log.warning("rldk_track: run %s ended without finishing; recorded as killed", start.run_id)
        info = RunInfo(start.run_id, start.name, start.project, layout.dir, start.wall_time, start.rank, start.world_size)
        deadline = time.monotonic() + timeout
        for name in names:
            if name == eventlog.NAME:
                results.append(SyncResult(start.run_id, name, 0, True, "the event log is the source"))
                continue
            cls = backend_registry.resolve(name)
            merged = {**start.backends.get(name, {}), **((options or {}).get(name, {}))}
            worker = BackendWorker(cls(info, merged), layout, has_event_log=True, catch_up=True, from_start=from_start)
            worker.catch_up_to(summary.last_seq)
            to_send = worker.behind()
            if not to_send:
                results.append(SyncResult(start.run_id, name, 0, True, "already up to date"))
                continue
            worker.start()
            worker.request_close()
            complete = worker.wait_closed(deadline)
            results.append(SyncResult(start.run_id, name, to_send - worker.behind(), complete))
        lock.release()
    return results
