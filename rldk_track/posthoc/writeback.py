"""Add records (post-hoc alerts, a comparison report) to a run that has already ended, in the
tracker it was read from, through the delivery machinery a live run uses.

* **Event log**: the records are appended after the run's last line, followed by a ``run_end``
  with the run's own status, so ``rldk-track sync`` (run here unless ``sync=False``) delivers
  them to every tracker the run recorded to, with its cursors, and ends each tracker run as before.
  The append holds the run's lock (:mod:`rldk_track.runlock`), so it never interleaves with a
  process that records the run (a resumed run, say): that fails at once, naming the process.
* **A tracker without the event log** (MLflow, TensorBoard): the run's backend, taken from the
  registry by the run's ``backend`` name, says how to reopen the tracker run from where the reader
  found it (``Backend.reopen(origin)``); a :class:`~rldk_track.dispatch.BackendWorker` then opens
  it, delivers the records with the backend's own rules (``rldk.alert.<rule>`` tags, alert log
  artifact, text summaries...) and its retries and refused-record handling, and ends it again
  with the run's status. There is no event log, so no cursor: the records' ``seq`` numbers make
  a second write-back of the same records store them once.
* **W&B**: not supported (an offline run file cannot be extended in place; ``reopen`` says so);
  write back through the run's event log instead, which syncs to W&B.

Records get ``seq`` numbers after the run's own: in an event log, after its last line; in a
tracker without one, from :data:`WRITE_BACK_SEQ`, so writing the same records twice stores them
once (the backends key their alert logs on ``seq``).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from rldk_track.records import STATUSES, Artifact, Record, RunEnd

#: First ``seq`` of write-back records sent straight to a tracker (far above any live run's).
WRITE_BACK_SEQ = 1 << 40
#: Seconds a tracker may take to reopen the run and take the records (retries included).
WRITE_BACK_TIMEOUT_S = 120.0


class WriteBackError(RuntimeError):
    """The run cannot take new records where it was read from; the message says why."""


@dataclasses.dataclass
class WriteBackResult:
    where: str
    records: int
    synced: list[str] = dataclasses.field(default_factory=list)
    #: Records the tracker refused (kept out, reported in the log); 0 through the event log,
    #: whose sync keeps them in ``<run_id>.<backend>.rejected.jsonl``.
    refused: int = 0


def write_back(run: Mapping[str, Any], records: Sequence[Record], sync: bool = True,
               timeout: float = WRITE_BACK_TIMEOUT_S) -> WriteBackResult:
    """Add ``records`` to the run described by ``run`` (a row of a RunSet's runs table)."""
    origin = dict(run.get("origin") or {})
    status = str(run.get("status") or "")
    if "event_log" in origin:
        return _to_event_log(Path(origin["event_log"]), run, records, status, sync)
    return _to_tracker(origin, run, records, status, timeout)


def _to_event_log(path: Path, run: Mapping[str, Any], records: Sequence[Record], status: str, sync: bool) -> WriteBackResult:
    from rldk_track.eventlog import EventLogWriter, stage_artifact, summarize
    from rldk_track.layout import RunLayout
    from rldk_track.runlock import RunLock, RunLocked

    if status not in STATUSES:
        raise WriteBackError(
            f"run {run.get('name')} has not ended ({status}); if its process is gone, `rldk-track sync "
            f"{path}` ends it as killed, then write back"
        )
    layout = RunLayout.from_event_log(path)
    try:
        lock = RunLock.acquire(layout)
    except RunLocked as live:
        raise WriteBackError(
            f"rldk_track: run {layout.run_id} is being recorded by {live.holder} (lock {layout.lock}); records "
            "written back now would interleave with its own. Write back once that process has ended."
        ) from live
    try:
        summary = summarize(path)  # under the lock: the run's last line now
        if not summary.ended:
            raise WriteBackError(f"run {run.get('name')} has not ended (its last attempt has no run_end); if its "
                                 f"process is gone, `rldk-track sync {path}` ends it as killed, then write back")
        next_seq = summary.last_seq + 1
        out: list[Record] = []
        for record in [*records, RunEnd(-1, time.time(), status)]:
            if isinstance(record, Artifact):
                record = stage_artifact(record, layout.artifacts_dir)
            out.append(dataclasses.replace(record, seq=next_seq))
            next_seq += 1
        writer = EventLogWriter(path, layout.run_id)
        try:
            writer.append(out)
        finally:
            writer.close()
    finally:
        lock.release()  # before sync, which takes it itself
    result = WriteBackResult(f"event log {path}", len(records))
    if sync:
        from rldk_track.sync import sync as sync_log

        result.synced = [f"{r.backend}: {'done' if r.complete else 'INCOMPLETE'}" for r in sync_log(path)]
    return result


def _to_tracker(origin: Mapping[str, str], run: Mapping[str, Any], records: Sequence[Record], status: str,
                timeout: float) -> WriteBackResult:
    from rldk_track import backends as backend_registry
    from rldk_track.backends.base import CannotReopen, RunInfo
    from rldk_track.dispatch import BackendWorker
    from rldk_track.eventlog import stage_artifact
    from rldk_track.layout import RunLayout

    name = str(run.get("backend") or "")
    try:
        cls = backend_registry.resolve(name)
        options, state = cls.reopen(origin)
    except (CannotReopen, ValueError, ImportError) as exc:
        raise WriteBackError(f"cannot add records to {run.get('source')} ({name}): {exc}") from exc
    folder = Path(tempfile.mkdtemp(prefix="rldk-writeback-"))
    info = RunInfo(str(run.get("run_id") or run.get("name")), str(run.get("name")), str(run.get("project") or ""),
                   folder, float(run.get("start_time") or time.time()))
    layout = RunLayout(folder, info.run_id)
    backend = cls(info, options)
    worker = BackendWorker(backend, layout, has_event_log=False, state=state)
    out = []
    for i, record in enumerate(records):
        if isinstance(record, Artifact):
            record = stage_artifact(record, layout.artifacts_dir)
        out.append(dataclasses.replace(record, seq=WRITE_BACK_SEQ + i))
    if status in STATUSES:
        out.append(RunEnd(WRITE_BACK_SEQ + len(out), time.time(), status))
    worker.start()
    if out:
        worker.submit(out)
    worker.request_close()
    if not worker.wait_closed(time.monotonic() + timeout):
        # The worker keeps trying in the background; its staged files stay until it is done.
        raise WriteBackError(f"{backend.describe()} did not take the records within {timeout:.0f} s "
                             "(the warning above says why)")
    shutil.rmtree(folder, ignore_errors=True)
    return WriteBackResult(backend.describe(), len(records), refused=worker.rejected)
