"""The local event log: append-only JSONL, one record per line, the run's write-ahead log.

Written by the dispatcher's log thread before any tracker sees a record; read back by catching-up
backend workers, ``rldk-track sync`` and the readers. A line cut short by a crash is skipped.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from rldk_track.records import Record, RunStart, from_json, to_json

log = logging.getLogger("rldk_track")


def dumps(obj: Any) -> str:
    """One JSON line; NaN/Infinity are kept as JSON's common extension tokens."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


class EventLogWriter:
    """Appends records to one event log file. Used from one thread only."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        path.parent.mkdir(parents=True, exist_ok=True)
        # A lone surrogate in a name cannot be UTF-8; written as its JSON escape it reads back as is.
        self._file = open(path, "a", encoding="utf-8", errors="backslashreplace")

    def append(self, records: Sequence[Record]) -> None:
        """Write and hand to the OS (readers in other threads/processes see them at once)."""
        self._file.write("".join(dumps(to_json(r, self.run_id)) + "\n" for r in records))
        self._file.flush()

    def sync(self) -> None:
        """Make what was appended durable (fsync)."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            self._file.close()


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
    and whether a ``run_end`` was written."""

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
