"""Read a W&B run file (``run-<id>.wandb``) into plain Python data, without a W&B server.

An offline run (``WANDB_MODE=offline``) lives in ``<WANDB_DIR>/wandb/offline-run-<time>-<id>/``;
everything the SDK recorded is in its ``run-<id>.wandb`` file, which ``wandb sync`` later uploads.
The file is a LevelDB-style log of ``wandb.proto.wandb_internal_pb2.Record`` messages:

* a 7-byte file header: ``b":W&B"``, magic ``0xBEE1`` (uint16, little-endian), version ``0``;
* 32 KiB blocks (the first one 7 bytes shorter, after the header) of chunks, each a 7-byte
  header -- CRC-32 (IEEE, as ``zlib.crc32``) of the chunk type byte followed by the payload
  (uint32 LE), payload length (uint16 LE), chunk type (1 full, 2 first, 3 middle, 4 last) --
  then the payload. A record that does not fit in the rest of a block is split into
  first/middle/last chunks; fewer than 7 bytes left in a block are zero padding.

A run that is still being written or that crashed ends in a partial chunk: reading stops there
and returns everything before it. A chunk with a bad checksum skips the rest of its block (as
W&B's own reader does).

A resumed run (``resume="allow"``) gets one run directory per segment; :func:`read_offline_run`
merges the segments of one run id in start order.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger("rldk_track")

_FILE_HEADER = struct.Struct("<4sHB")
_CHUNK_HEADER = struct.Struct("<IHB")
_IDENT = b":W&B"
_MAGIC = 0xBEE1
_VERSION = 0
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4

#: Summary/config entries W&B adds for itself, not for the user.
_INTERNAL_KEYS = frozenset({"_wandb"})


@dataclass
class WandbArtifact:
    """One artifact the run logged: its entries map path-in-artifact to the local file that
    holds the content (W&B's staging copy; it may have been removed after an upload)."""

    name: str
    type: str
    digest: str
    aliases: list[str]
    metadata: dict[str, Any]
    entries: dict[str, str]
    sizes: dict[str, int]


@dataclass
class WandbOfflineRun:
    """What one W&B run stored: history rows (each with W&B's ``_step``, ``_timestamp`` and
    ``_runtime`` and, from rldk_track, ``global_step``), the final config and summary, tags,
    the declared metrics, logged artifacts and the exit code (None: the run never finished).

    Besides one row per metrics record, rldk_track's backend writes a row per raised alert
    (``alerts/count``, derived from the alerts).
    """

    run_id: str = ""
    name: str = ""
    project: str = ""
    entity: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[WandbArtifact] = field(default_factory=list)
    exit_code: int | None = None
    resumed: bool = False
    files: list[Path] = field(default_factory=list)

    def series(self, key: str, step_key: str = "global_step") -> list[tuple[Any, Any]]:
        """``(step, value)`` for every history row that has ``key``, in logged order."""
        return [(row.get(step_key), row[key]) for row in self.history if key in row]

    def artifact(self, name: str) -> WandbArtifact:
        """The last logged version of the artifact called ``name``."""
        found = [a for a in self.artifacts if a.name == name]
        if not found:
            raise KeyError(f"no artifact {name!r}; logged: {sorted({a.name for a in self.artifacts})}")
        return found[-1]


def iter_record_bytes(path: str | Path) -> Iterator[bytes]:
    """The serialized records of a ``.wandb`` file, in order (see the module docstring)."""
    data = Path(path).read_bytes()
    if len(data) < _FILE_HEADER.size:
        return
    ident, magic, version = _FILE_HEADER.unpack_from(data, 0)
    if ident != _IDENT or magic != _MAGIC:
        raise ValueError(f"{path} is not a W&B run file (header {data[:7]!r})")
    if version != _VERSION:
        raise ValueError(f"{path}: W&B run file version {version} is not supported (expected {_VERSION})")
    pos = _FILE_HEADER.size
    pending: bytearray | None = None
    while True:
        room = _BLOCK - pos % _BLOCK
        if room < _CHUNK_HEADER.size:
            pos += room  # zero padding at the end of a block
            continue
        if pos + _CHUNK_HEADER.size > len(data):
            return  # end of file (or a header cut short by a crash)
        checksum, length, kind = _CHUNK_HEADER.unpack_from(data, pos)
        start, end = pos + _CHUNK_HEADER.size, pos + _CHUNK_HEADER.size + length
        if checksum == 0 and length == 0 and kind == 0:
            pos += room  # a zeroed rest of block (preallocated file)
            continue
        if end > len(data):
            return  # the writer has not finished this chunk
        if end > pos + room or zlib.crc32(data[start - 1 : end]) != checksum:
            log.warning("rldk_track: %s: corrupt chunk at byte %d; skipping the rest of its block", path, pos)
            pos += room
            pending = None
            continue
        payload = data[start:end]
        pos = end
        if kind == _FULL:
            pending = None
            yield payload
        elif kind == _FIRST:
            pending = bytearray(payload)
        elif kind in (_MIDDLE, _LAST) and pending is not None:
            pending += payload
            if kind == _LAST:
                yield bytes(pending)
                pending = None


def iter_records(path: str | Path) -> Iterator[Any]:
    """The ``wandb_internal_pb2.Record`` messages of a ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    for raw in iter_record_bytes(path):
        record = pb.Record()
        record.ParseFromString(raw)
        yield record


#: How long to wait for W&B's service to write a run file that ``run.finish()`` has returned on.
WRITE_WAIT_S = 60.0
#: A run file touched this recently and without its exit record may still be being written.
FRESH_S = 60.0


def has_exit_record(path: str | Path) -> bool | None:
    """True once a run file holds its exit record; False when it holds a run record but no exit
    (a live or crashed run); None when it holds no run record yet (only its header)."""
    started = False
    try:
        for record in iter_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "exit":
                return True
            started = started or kind == "run"
    except (OSError, ValueError):
        return None
    return False if started else None


def wait_until_written(path: str | Path, timeout: float = WRITE_WAIT_S) -> bool:
    """Wait (at most ``timeout`` s) until W&B's service has written the run file out.

    ``wandb.finish()`` returns once W&B's service has *received* the exit record; the service
    (wandb-core) writes the transaction log later, when it closes the run: right after
    ``finish`` the file may hold only its 7-byte header (seen under load). True once the exit
    record is in the file."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if has_exit_record(path):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def settle(path: Path, timeout: float = WRITE_WAIT_S) -> bool | None:
    """Before reading a run file: if it may still be being written (no exit record, touched in
    the last :data:`FRESH_S` seconds), wait for its exit record, at most ``timeout`` s. Returns
    what :func:`has_exit_record` says afterwards."""
    state = has_exit_record(path)
    if state is True:
        return True
    try:
        fresh = time.time() - path.stat().st_mtime < FRESH_S
    except OSError:
        return state
    if fresh and wait_until_written(path, timeout):
        return True
    return has_exit_record(path)


def run_id_of(path: Path) -> str:
    """The run id in a run file's name, ``run-<id>.wandb``."""
    return path.stem[len("run-"):]


def find_run_files(root: str | Path, run_id: str | None = None) -> list[Path]:
    """Every ``run-<id>.wandb`` under ``root`` (a ``WANDB_DIR``, its ``wandb/`` folder, a run
    directory or the file itself), oldest first; only ``run_id``'s when given."""
    root = Path(root)
    if root.is_file():
        return [root]
    pattern = f"run-{run_id}.wandb" if run_id else "run-*.wandb"
    files = [p for p in root.rglob(pattern) if p.is_file()]
    return sorted(files, key=_start_time)


def _start_time(path: Path) -> tuple[str, float, float]:
    """When a segment started: the time in its directory name (``offline-run-YYYYMMDD_HHMMSS-id``,
    to the second), then its run record's start time, then the file's time. A segment whose
    process died before W&B wrote anything has only the first and the last."""
    stamp = re.search(r"\d{8}_\d{6}", path.parent.name)
    started = float("inf")
    try:
        for record in iter_records(path):
            if record.WhichOneof("record_type") == "run":
                started = record.run.start_time.seconds + record.run.start_time.nanos / 1e9
                break
    except (OSError, ValueError):
        pass
    return stamp.group(0) if stamp else "", started, path.stat().st_mtime


def segments_by_run(root: str | Path) -> dict[str, list[Path]]:
    """Every run under ``root``: run id -> its run files (resumed segments), oldest first."""
    runs: dict[str, list[Path]] = {}
    for path in find_run_files(root):
        runs.setdefault(run_id_of(path), []).append(path)
    return runs


def read_run_file(path: str | Path) -> WandbOfflineRun:
    """Everything one ``.wandb`` file holds."""
    return read_segments([Path(path)])


def read_segments(files: list[Path]) -> WandbOfflineRun:
    """One run from its run files (the segments of one run id, oldest first), merged."""
    run = WandbOfflineRun()
    for path in files:
        _apply(run, path)
    return run


def read_offline_run(root: str | Path, run_id: str | None = None) -> WandbOfflineRun:
    """The run ``run_id`` under ``root``, its resumed segments merged in start order; with no
    ``run_id`` there must be exactly one run there."""
    files = find_run_files(root, run_id)
    if not files:
        raise FileNotFoundError(f"no W&B run file {'for run ' + run_id + ' ' if run_id else ''}under {root}")
    ids = {run_id_of(p) for p in files}
    if len(ids) > 1:
        raise ValueError(f"several W&B runs under {root} ({', '.join(sorted(ids))}); pass run_id")
    return read_segments(files)


def _apply(run: WandbOfflineRun, path: Path) -> None:
    run.files.append(path)
    started = False
    for record in iter_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            if not started:  # a later segment that never finished leaves the run unfinished
                started, run.exit_code = True, None
            _apply_run(run, record.run)
        elif kind == "history":
            run.history.append({_key(item): _value(item.value_json) for item in record.history.item})
        elif kind == "config":
            _update(run.config, record.config.update, record.config.remove)
        elif kind == "summary":
            _update(run.summary, record.summary.update, record.summary.remove)
        elif kind == "metric":
            run.metrics.append(_metric(record.metric))
        elif kind == "artifact":
            run.artifacts.append(_artifact(record.artifact))
        elif kind == "exit":
            run.exit_code = record.exit.exit_code


def _apply_run(run: WandbOfflineRun, rec: Any) -> None:
    run.run_id = rec.run_id or run.run_id
    run.name = rec.display_name or run.name
    run.project = rec.project or run.project
    run.entity = rec.entity or run.entity
    run.group = rec.run_group or run.group
    run.job_type = rec.job_type or run.job_type
    run.tags = list(rec.tags)
    run.resumed = run.resumed or bool(rec.resume or rec.resumed)
    _update(run.config, rec.config.update, rec.config.remove)
    _update(run.summary, rec.summary.update, rec.summary.remove)


def _key(item: Any) -> str:
    return item.key or ".".join(item.nested_key)


def _value(value_json: str) -> Any:
    return json.loads(value_json) if value_json else None


def _update(target: dict[str, Any], updates: Any, removes: Any) -> None:
    for item in updates:
        path = [item.key] if item.key else list(item.nested_key)
        if path[0] in _INTERNAL_KEYS:
            continue
        node = target
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = _value(item.value_json)
    for item in removes:
        path = [item.key] if item.key else list(item.nested_key)
        node = target
        for part in path[:-1]:
            node = node.get(part) if isinstance(node.get(part), dict) else {}
        node.pop(path[-1], None)


def _metric(rec: Any) -> dict[str, Any]:
    return {"name": rec.name, "glob_name": rec.glob_name, "step_metric": rec.step_metric}


def _artifact(rec: Any) -> WandbArtifact:
    entries = {e.path: e.local_path for e in rec.manifest.contents}
    sizes = {e.path: int(e.size) for e in rec.manifest.contents}
    try:
        metadata = json.loads(rec.metadata) if rec.metadata else {}
    except ValueError:
        metadata = {"raw": rec.metadata}
    return WandbArtifact(rec.name, rec.type, rec.digest, list(rec.aliases), metadata, entries, sizes)


def main(argv: list[str] | None = None) -> int:
    """``python -m rldk_track.backends.wandb_offline DIR``: one line per W&B run under DIR."""
    import argparse

    parser = argparse.ArgumentParser(description="List the W&B runs stored under a directory (offline run files).")
    parser.add_argument("dir", help="a WANDB_DIR, its wandb/ folder, or an rldk_track run directory")
    args = parser.parse_args(argv)
    runs = segments_by_run(args.dir)
    if not runs:
        print(f"no W&B run files under {args.dir}")
        return 1
    print(f"{'run id':<24} {'project':<20} {'name':<28} {'segments':>8} {'rows':>7}  state")
    for run_id, files in runs.items():
        run = read_segments(files)
        state = "running or crashed" if run.exit_code is None else f"exit {run.exit_code}"
        synced = all(p.with_name(p.name + ".synced").exists() for p in run.files)
        print(f"{run_id:<24} {run.project:<20} {run.name:<28} {len(run.files):>8} {len(run.history):>7}  "
              f"{state}{', synced' if synced else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
