"""Add records (post-hoc alerts, a comparison report) to a run that has already ended, in the
tracker it was read from, through the same paths a live run uses.

* **Event log**: the records are appended after the run's last line, followed by a ``run_end``
  with the run's own status, so ``rldk-track sync`` (run here unless ``sync=False``) delivers
  them to every tracker the run recorded to and ends each tracker run as before.
* **MLflow** / **TensorBoard**: the run's backend reopens the tracker run (``Backend.open`` with
  the run's state), writes the records with its own rules (``rldk.alert.<rule>`` tags, alert log
  artifact, text summaries...) and ends it again with the run's status.
* **W&B**: not supported (an offline run file cannot be extended in place); write back through
  the run's event log instead, which syncs to W&B.

Records get ``seq`` numbers after the run's own: in an event log, after its last line; in a
tracker without one, from :data:`WRITE_BACK_SEQ`, so writing the same records twice stores them
once (the backends key their alert logs on ``seq``).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from rldk_track.records import STATUSES, Artifact, Record, RunEnd

#: First ``seq`` of write-back records sent straight to a tracker (far above any live run's).
WRITE_BACK_SEQ = 1 << 40


class WriteBackError(RuntimeError):
    """The run cannot take new records where it was read from; the message says why."""


@dataclasses.dataclass
class WriteBackResult:
    where: str
    records: int
    synced: list[str] = dataclasses.field(default_factory=list)


def write_back(run: Mapping[str, Any], records: Sequence[Record], sync: bool = True) -> WriteBackResult:
    """Add ``records`` to the run described by ``run`` (a row of a RunSet's runs table)."""
    origin = dict(run.get("origin") or {})
    status = str(run.get("status") or "")
    if "event_log" in origin:
        return _to_event_log(Path(origin["event_log"]), run, records, status, sync)
    if "mlflow_run_id" in origin:
        from rldk_track.backends.mlflow import MlflowBackend

        state = {"tracking_uri": origin["tracking_uri"], "mlflow_run_id": origin["mlflow_run_id"],
                 "experiment_id": origin.get("experiment_id")}
        return _to_backend(MlflowBackend, {"tracking_uri": origin["tracking_uri"]}, state, run, records, status,
                           f"mlflow run {origin['mlflow_run_id']} at {origin['tracking_uri']}")
    if "log_dir" in origin:
        from rldk_track.backends.tensorboard import TensorBoardBackend

        log_dir = Path(origin["log_dir"])
        return _to_backend(TensorBoardBackend, {"log_dir": str(log_dir.parent)}, {"log_dir": str(log_dir)}, run,
                           records, status, f"tensorboard run {log_dir}")
    raise WriteBackError(
        f"cannot add records to {run.get('source')} ({run.get('backend')}): W&B run files cannot be extended; "
        "analyze the run's event log instead (it syncs to W&B)"
    )


def _to_event_log(path: Path, run: Mapping[str, Any], records: Sequence[Record], status: str, sync: bool) -> WriteBackResult:
    from rldk_track.eventlog import EventLogWriter, summarize
    from rldk_track.eventlog import stage_artifact
    from rldk_track.layout import RunLayout

    if status not in STATUSES:
        raise WriteBackError(
            f"run {run.get('name')} has not ended ({status}); if its process is gone, `rldk-track sync "
            f"{path}` ends it as killed, then write back"
        )
    layout = RunLayout.from_event_log(path)
    next_seq = summarize(path).last_seq + 1
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
    result = WriteBackResult(f"event log {path}", len(records))
    if sync:
        from rldk_track.sync import sync as sync_log

        result.synced = [f"{r.backend}: {'done' if r.complete else 'INCOMPLETE'}" for r in sync_log(path)]
    return result


def _to_backend(cls: type, options: dict[str, Any], state: dict[str, Any], run: Mapping[str, Any],
                records: Sequence[Record], status: str, where: str) -> WriteBackResult:
    from rldk_track.backends.base import Resume, RunInfo
    from rldk_track.eventlog import stage_artifact

    with tempfile.TemporaryDirectory(prefix="rldk-writeback-") as tmp:
        info = RunInfo(str(run.get("run_id") or run.get("name")), str(run.get("name")), str(run.get("project") or ""),
                       Path(tmp), float(run.get("start_time") or time.time()))
        backend = cls(info, options)
        backend.open(state, Resume())  # no event log here: nothing was delivered through one
        out = []
        for i, record in enumerate(records):
            if isinstance(record, Artifact):
                record = stage_artifact(record, Path(tmp) / "artifacts")
            out.append(dataclasses.replace(record, seq=WRITE_BACK_SEQ + i))
        if status in STATUSES:
            out.append(RunEnd(WRITE_BACK_SEQ + len(out), time.time(), status))
        try:
            backend.write(out)
        finally:
            backend.close()
    return WriteBackResult(where, len(records))

