"""The local event log: append-only JSONL, one record per line, the run's write-ahead log.

Part of the core, not a backend: the dispatcher's log thread writes it before any tracker sees
a record, and catching-up backend workers, ``rldk-track sync``, post-hoc analysis, ``merge`` and
the readers read it back. A line cut short by a crash is skipped. This module holds everything
about the log's files (where they are is :mod:`rldk_track.layout`): the writer and reader, the
summary of a whole log, each tracker's delivery cursor, the refused-records file and the staging
of artifact files next to it.

The user-facing backend name ``"jsonl"`` (:data:`NAME`) still means this log wherever backends are
named (``init(backend="jsonl")``, ``RLDK_TRACK_BACKENDS``, ``rldk-track sync --to jsonl``): it asks
for nothing beyond what is always on, so it is not a tracker in ``Run.backends`` nor in
``rldk_track.backends.available()``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from rldk_track.records import Artifact, Record, RunStart, from_json, to_json

log = logging.getLogger("rldk_track")

#: The name under which users ask for the event log among backends (it is always on anyway).
NAME = "jsonl"
#: Setting this environment variable to 1/true/yes turns the event log off.
DISABLE_ENV = "RLDK_DISABLE_JSONL"


def enabled() -> bool:
    """Whether runs write the event log (always, unless ``RLDK_DISABLE_JSONL=1``)."""
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("1", "true", "yes")


def dumps(obj: Any) -> str:
    """One JSON line; NaN/Infinity are kept as JSON's common extension tokens."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


class EventLogWriter:
    """Appends records to one event log file. Used from one thread only.

    An append that fails (a full disk) leaves no torn line: the file is cut back to its last
    complete line and the error raised, so a later append (once there is space) continues on a
    clean line."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unbuffered: nothing half-written lingers in a buffer after a failed write.
        self._file = open(path, "ab", buffering=0)
        self._size = os.fstat(self._file.fileno()).st_size

    def append(self, records: Sequence[Record]) -> None:
        """Write and hand to the OS (readers in other threads/processes see them at once);
        raise OSError, with nothing of these records left in the file, when it cannot."""
        self.append_lines(encode_lines(records, self.run_id))

    def append_lines(self, lines: Sequence[bytes]) -> None:
        """:meth:`append` for records already encoded by :func:`encode_lines`."""
        data = b"".join(lines)
        view = memoryview(data)
        try:
            while view:
                view = view[self._file.write(view) or 0:]
        except OSError:
            self._cut_to(self._size)
            raise
        self._size += len(data)

    def _cut_to(self, size: int) -> None:
        try:
            os.ftruncate(self._file.fileno(), size)  # frees blocks: works on a full disk
        except OSError as exc:
            log.warning("rldk_track: could not cut a partial line off %s: %s (readers skip it)", self.path, exc)

    def sync(self) -> None:
        """Make what was appended durable (fsync)."""
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            try:
                self.sync()
            finally:
                self._file.close()


def encode_lines(records: Sequence[Record], run_id: str) -> list[bytes]:
    """Each record's event-log line (UTF-8, newline included). The log thread encodes once and
    uses the lines' lengths to size its in-memory queues too."""
    # A lone surrogate in a name cannot be UTF-8; written as its JSON escape it reads back as is.
    return [(dumps(to_json(r, run_id)) + "\n").encode("utf-8", "backslashreplace") for r in records]


def read_lines(path: Path, offset: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(offset after the line, parsed object)`` for each complete line from byte ``offset``.

    A last line without its newline is still being written (or was cut by a crash) and is
    not returned; a corrupt line is skipped with a warning.
    """
    with open(path, "rb") as f:
        f.seek(offset)
        position = offset
        for raw in f:
            if not raw.endswith(b"\n"):
                return
            position += len(raw)
            if not raw.strip():
                continue
            try:
                yield position, json.loads(raw)
            except ValueError:
                log.warning("rldk_track: skipping a corrupt line in %s at byte %d", path, position - len(raw))


def read_records(path: Path, after_seq: int = -1, offset: int = 0) -> Iterator[tuple[int, Record]]:
    """``(offset after the line, record)`` for every record with ``seq > after_seq``."""
    for position, obj in read_lines(path, offset):
        if obj.get("seq", -1) <= after_seq and "kind" in obj:
            continue
        try:
            yield position, from_json(obj)
        except (TypeError, ValueError) as exc:
            log.warning("rldk_track: skipping an unreadable record in %s: %s", path, exc)


@dataclass
class LogSummary:
    """What a whole event log says about its run: the (last) ``run_start``, the highest ``seq``
    and whether that last attempt ended (a ``run_end`` after the last ``run_start``: an earlier
    attempt's end says nothing about a resumed one that crashed)."""

    start: RunStart | None
    last_seq: int
    ended: bool


def summarize(path: Path) -> LogSummary:
    """Read an event log once and summarize it (resume, sync, write-back, doctor)."""
    summary = LogSummary(None, -1, False)
    for _, record in read_records(path):
        summary.last_seq = max(summary.last_seq, record.seq)
        if isinstance(record, RunStart):
            summary.start = record
            summary.ended = False
        elif record.kind == "run_end":
            summary.ended = True
    return summary


def read_cursor(path: Path) -> dict[str, Any]:
    """A backend's delivery position: ``{"seq": last delivered seq, "state": {...}}``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {"seq": -1, "state": None}


def write_cursor(path: Path, seq: int, state: Mapping[str, Any] | None) -> None:
    """Persist the delivery position atomically (write, then rename over)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps({"seq": seq, "state": state}), encoding="utf-8")
    os.replace(tmp, path)


def append_rejected(path: Path, record: Record, error: Exception, run_id: str) -> None:
    """Keep a record a tracker refused, with the reason, in ``<run_id>.<backend>.rejected.jsonl``."""
    line = dumps({"error": f"{type(error).__name__}: {error}", "record": to_json(record, run_id)})
    # backslashreplace: the refused record may hold the very character that was refused
    with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
        f.write(line + "\n")


def stage_artifact(artifact: Artifact, folder: Path) -> Artifact:
    """Copy the artifact (bytes, a file or a directory) to ``folder/<name>`` so it outlives the
    caller's file; the returned record points there. Raises OSError when it cannot."""
    target = folder / artifact.name
    target.parent.mkdir(parents=True, exist_ok=True)
    source = Path(artifact.path or "")
    if artifact.data is not None:
        target.write_bytes(artifact.data)
    elif source.resolve() != target.resolve():  # a replayed record is staged already
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) if target.is_dir() else target.stat().st_size
    return dataclasses.replace(artifact, path=str(target), data=None, size=size)
