"""TensorBoard: event files written with TensorBoard's own writer and protos (no torch, no TensorFlow).

Each run gets one directory, ``<log_dir>/<run name>`` (``<log_dir>`` defaults to
``<dir>/tensorboard``), so ``tensorboard --logdir rldk_runs/tensorboard`` shows every run side by
side. A directory that already belongs to another run (its ``rldk/run.json`` names another run id,
or it holds event files of another writer) is left alone and the run uses
``<run name>-<run id>``. Everything about the run lives in that one directory:

```
<run dir>/events.out.tfevents.*            scalars, text and hparams (what TensorBoard shows)
<run dir>/rldk/run.json                     which run owns the directory (+ status once it ended)
<run dir>/rldk/alerts.jsonl                 the alert log, one alert per line
<run dir>/rldk/config.jsonl                 every params and tags record, one a line (readers merge them)
<run dir>/rldk/checkpoints/step_<N>/health.json   each checkpoint's health verdict
<run dir>/rldk/renamed_tags.jsonl           names that had to change to become tags
<run dir>/artifacts/<name>                  copies of the run's artifacts
```

TensorBoard's rules, as this module applies them (see docs/backends/tensorboard.md):

- A tag is any UTF-8 string. The writer refuses lone surrogates, so they become U+FFFD. The web
  server answers 414 to request lines over 64 KiB, and a tag travels percent-encoded in the
  URL, so tags are capped at :data:`MAX_TAG_BYTES` UTF-8 bytes. A changed name gets a short hash
  of the original, so two names never merge. It is reported once and listed in
  ``rldk/renamed_tags.jsonl``.
- A tag's plugin is fixed by its first event (first summary metadata wins). A scalar series and a
  text series therefore never share a tag: the later one gets a suffix, reported once.
- Scalars are float32. TensorBoard's fast loader (``tensorboard-data-server``) reads only float32
  scalars, so a double would not be shown. NaN and ±Inf are kept. A finite value beyond float32's
  range becomes ±Inf, reported once.
- The web view keeps one point per step and series. When a step goes back, the loader drops the
  later points of that series from the view, though the event file keeps every point. Reported once.
- Hparams: one session-start summary per run directory (first one wins). It is written from the
  first params record, and later params reach the ``config`` text only.
- The ``config`` and ``tags`` texts show the whole accumulated value, so rewriting them after every
  record grows the event file quadratically. Each is rewritten only while all its rewrites stay
  within :data:`REWRITE_FACTOR` times the bytes of the records that changed it (plus
  :data:`REWRITE_FREE_BYTES`), and always at the run's end; ``rldk/config.jsonl`` holds every
  record once, exactly, for readers.
- An event file only grows, and a crash can come between a flush and the dispatcher's cursor
  update: the resent records would be in the file twice. The state kept with the cursor names the
  event file, its size at the last flush and the last record in it (``event_file``,
  ``event_bytes``, ``event_seq``); reopening cuts the file back to that size, so whatever the
  crashed process wrote after it (even a torn event) is gone before it is sent again.
- An OS crash (or power loss) can also take the file's tail that was still in the page cache:
  the file is then shorter than ``event_bytes``. Reopening reads its whole events (TensorBoard's
  record framing and CRCs), places them among the logged records by wall time and step, cuts the
  file after the last record it wholly holds, and writes every later record again from the event
  log (``event_start_seq``, the last record before the file, bounds the search).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from itertools import takewhile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from rldk_track.alerts import ALERT_FIELDS, AlertLog, alert_json, alert_line
from rldk_track.backends.base import Backend, RejectedError, Resume, RunInfo
from rldk_track.normalize import deep_merge, flatten
from rldk_track.records import (
    Alert,
    Artifact,
    CheckpointHealth,
    Evidence,
    Metrics,
    Params,
    Record,
    RunEnd,
    Samples,
    RunStart,
    Summary,
    Tags,
    checkpoint_folder,
    to_json,
)
from rldk_track.vocab.tensorboard import (
    ALERT_PREFIX,
    ALERTS_FILE,
    ARTIFACTS_DIR,
    CHECKPOINT_PREFIX,
    CONFIG_FILE,
    CONFIG_TAG,
    DEFAULT_LOG_DIR,
    OWNER_FILE,
    RENAMED_FILE,
    SAMPLES_FILE,
    SAMPLES_PREFIX,
    STATUS_TAG,
    SUMMARY_PREFIX,
    TAGS_TAG,
    ConfigLine,
    OwnerFile,
    RenamedTag,
    SamplesLine,
)

log = logging.getLogger("rldk_track")

#: Longest tag, in UTF-8 bytes: percent-encoded (at most 3 bytes per byte) it stays far inside
#: the 64 KiB request line TensorBoard's web server accepts, next to the run name.
MAX_TAG_BYTES = 4096
#: Longest string shown as an hparam value; the full value is in the ``config`` text.
MAX_HPARAM_CHARS = 1024
FLOAT32_MAX = 3.4028234663852886e38
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: The ``config``/``tags`` texts are rewritten while all their rewrites stay within this many times
#: the bytes of the records that changed them, plus :data:`REWRITE_FREE_BYTES` (and at the end).
REWRITE_FACTOR = 4
REWRITE_FREE_BYTES = 64 * 1024

#: Who writes a tag, in words for messages.
_SERIES_KINDS = {"scalar:metrics": "metric", "scalar:summary": "summary", "text": "text", "hparams": "hparams plugin"}
#: Alert fields left out of an alert's text table: bookkeeping, and the rule (in the text's tag).
_NOT_IN_ALERT_TEXT = frozenset({"seq", "wall_time", "rule", "evidence"})
_OPTION_TYPES = {"log_dir": (str, os.PathLike), "flush_secs": (int, float), "max_queue": (int,)}


def tag_name(name: str) -> tuple[str, str]:
    """``name`` as a TensorBoard tag, and why it had to change (``""`` when it did not).

    A changed name ends in ``~`` and 8 hex digits of the original's hash, so distinct names stay
    distinct tags.
    """
    reasons = []
    tag = name
    try:
        encoded = tag.encode("utf-8")
    except UnicodeEncodeError:
        tag = tag.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        encoded = tag.encode("utf-8")
        reasons.append("has characters that are not valid UTF-8")
    if len(encoded) > MAX_TAG_BYTES:
        tag = encoded[: MAX_TAG_BYTES - 9].decode("utf-8", "ignore")
        reasons.append(f"is longer than {MAX_TAG_BYTES} UTF-8 bytes")
    if not reasons:
        return name, ""
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{tag}~{digest}", " and ".join(reasons)


def _utf8(text: str) -> bytes:
    """Text as UTF-8, lone surrogates replaced (the protos require valid UTF-8)."""
    return text.encode("utf-8", "replace") if not text.isascii() else text.encode("ascii")


def _clean(text: str) -> str:
    return _utf8(text).decode("utf-8")


def _to_json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def _fenced(text: str, lang: str = "") -> str:
    """A markdown code block whose fence no backtick run inside ``text`` can close."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _cell(value: Any) -> str:
    """A markdown table cell: pipes escaped, line breaks kept as <br>."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")


def _table(rows: Mapping[str, Any], header: tuple[str, str] = ("field", "value")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows.items()]
    return "\n".join(lines)


def _evidence_text(evidence: Evidence) -> str:
    """An alert's evidence rows as a markdown table, under a line that says where they are from."""
    lines = [f"Evidence: rows of samples `{evidence.name}` at step {evidence.step}, {evidence.by} first", "",
             "| " + " | ".join(_cell(c) for c in evidence.columns) + " |", "|" + "---|" * len(evidence.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in evidence.rows]
    return "\n".join(lines)


class _Rewrites:
    """When to rewrite a text that shows a whole accumulated value (the config, the tags table):
    while every rewrite so far stays within a byte budget linear in the bytes of the records that
    changed it, so the event file grows linearly however many records there are."""

    def __init__(self) -> None:
        self.changed_bytes = 0  # bytes of the records that changed the value
        self.written_bytes = 0  # bytes of the texts written so far
        self.last_bytes = 0  # size of the last text written
        self.pending = 0  # bytes changed since the last text
        self.dirty = False

    def change(self, size: int) -> None:
        self.changed_bytes += size
        self.pending += size
        self.dirty = True

    def due(self) -> bool:
        """Whether a rewrite now (its size estimated as the last text plus the change) stays in budget."""
        estimate = self.last_bytes + self.pending
        return self.dirty and self.written_bytes + estimate <= REWRITE_FACTOR * self.changed_bytes + REWRITE_FREE_BYTES

    def wrote(self, size: int) -> None:
        self.written_bytes += size
        self.last_bytes = size
        self.pending = 0
        self.dirty = False


class TensorBoardBackend(Backend):
    """Writes one TensorBoard run directory per rldk_track run, with the options in
    ``accepted_options`` (``tensorboard={...}``). Every ``write`` ends with a flush, so what the
    dispatcher counts as delivered is in the event file.
    """

    name = "tensorboard"
    accepted_options = {
        "log_dir": "the root that `tensorboard --logdir` points at (default <dir>/tensorboard)",
        "flush_secs": "how often the event writer flushes while a large batch is still being written (default 5)",
        "max_queue": "events buffered between this worker and the event writer's thread (default 100)",
    }
    #: ``run_start`` too: a resumed attempt's start marks where TensorBoard's view purges from.
    supports = Backend.supports | {"samples", RunStart.kind}
    requires = ("tensorboard",)
    extra = "tensorboard"
    linger_s = 0.5  # every write ends with a flush: fewer, larger writes

    def __init__(self, run: RunInfo, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(run, options)
        for key, value in self.options.items():
            types = _OPTION_TYPES.get(key)
            if value is not None and types and not isinstance(value, types):
                raise TypeError(f"tensorboard option {key!r} must be {types[0].__name__}, not {type(value).__name__}")
        self.root = Path(self.options.get("log_dir") or Path(run.dir) / DEFAULT_LOG_DIR).absolute()
        self.flush_secs = float(self.options.get("flush_secs", 5.0))
        self.max_queue = int(self.options.get("max_queue", 100))
        self.log_dir: Path | None = None
        self._writer: Any = None
        self._described: set[str] = set()  # tags whose metadata the current event file carries
        self._done_seq = -1  # last record fully handed to the writer (a retried batch skips these)
        self._flushed_seq = -1  # last record known to be in the event file
        self._event_file: Path | None = None  # the event file being written
        self._event_bytes = 0  # its size at the last flush: everything up to _flushed_seq
        self._event_start_seq = -1  # the last record before its first event
        self._tags: dict[tuple[str, str], str] = {}  # (owner, name) -> tag
        self._tag_owner: dict[str, str] = {}  # tag -> "scalar:<source>" or "text"
        self._max_step: dict[str, int] = {}  # last step per metric name, to spot a series going back
        self._new_attempt = False  # a resumed attempt started: its first step supersedes the steps after it
        self._config: dict[str, Any] = {}
        self._hparams_written = False
        self._hparam_names: set[str] = set()
        self._run_tags: dict[str, str] = {}
        self._rewrites = {CONFIG_TAG: _Rewrites(), TAGS_TAG: _Rewrites()}
        self._config_lines: set[int] = set()  # seqs in rldk/config.jsonl
        self._alerts: AlertLog | None = None  # rldk/alerts.jsonl as written so far
        self._samples_written: set[int] | None = None  # seqs in rldk/samples.jsonl
        self._pb: Any = None  # the tensorboard proto modules, imported in open()
        self._handlers: dict[str, Callable[[Any], None]] = {
            Metrics.kind: self._metrics,
            Params.kind: self._params,
            Tags.kind: self._tags_record,
            Summary.kind: self._summary,
            Alert.kind: self._alert,
            Artifact.kind: self._artifact,
            CheckpointHealth.kind: self._checkpoint,
            Samples.kind: self._samples,
            RunEnd.kind: self._run_end,
            RunStart.kind: self._run_start,
        }

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self, state: Mapping[str, Any] | None, resume: Resume) -> Mapping[str, Any]:
        """Claim this run's directory (or reopen the one in ``state``) and start an event file.

        Reopening first cuts the last event file back to what ``state`` says it held at the
        delivered position (the dispatcher resends everything after it), then writes again the
        few records between that point and ``resume.delivered_seq``, if any."""
        self._pb = _Protos()
        for tag in self._pb.HPARAMS_TAGS:  # a metric never takes the hparams plugin's own tags
            self._tag_owner[tag] = "hparams"
        in_file = resume.delivered_seq
        if state and state.get("log_dir"):
            self.log_dir = Path(state["log_dir"])
            self.log_dir.mkdir(parents=True, exist_ok=True)
            if _owner(self.log_dir) is None:
                self._write_owner(self.log_dir)
            in_file = self._cut_back(state, resume)
        else:
            self.log_dir = self._claim_dir()
        self._restore_config(in_file)
        self._done_seq = self._flushed_seq = in_file
        self._open_writer()
        if in_file < resume.delivered_seq:
            self._write_again(takewhile(lambda r: r.seq <= resume.delivered_seq, resume.records_after(in_file)))
        return self._state()

    def _state(self) -> dict[str, Any]:
        """What the dispatcher keeps with its cursor: the run directory, and the event file with
        its size when it held everything up to ``event_seq``, and the last record before its
        first event (see :meth:`_cut_back`)."""
        state: dict[str, Any] = {"log_dir": str(self.log_dir)}
        if self._event_file is not None:
            state.update(event_file=self._event_file.name, event_bytes=self._event_bytes, event_seq=self._flushed_seq,
                         event_start_seq=self._event_start_seq)
        return state

    def _cut_back(self, state: Mapping[str, Any], resume: Resume) -> int:
        """Cut the event file named in ``state`` back to the size it had at ``state``'s
        ``event_seq``, and any later event file of the same process (its retry after its writer
        broke) back to its header: what they hold came after that record, and the dispatcher resends it
        (its cursor never got further), so it would otherwise be in the files twice. A file that
        is shorter than that lost its tail in an OS crash: it is cut after the last record it
        wholly holds (:meth:`_cut_lost_tail`). Returns the last record the files now hold
        (``resume.delivered_seq`` when ``state`` names no file)."""
        delivered_seq = resume.delivered_seq
        name, size, seq = state.get("event_file"), state.get("event_bytes"), state.get("event_seq")
        if not isinstance(name, str) or Path(name).name != name or not isinstance(size, int) or not isinstance(seq, int):
            return delivered_seq
        if seq > delivered_seq:  # a cursor moved back by hand: the files' tails cannot be placed
            return delivered_seq
        later = [p for p in self.log_dir.glob("events.out.tfevents.*") if _later_file_of_same_writer(p.name, name)]
        for path, keep in [(self.log_dir / name, size), *((p, _header_bytes(p)) for p in later)]:
            try:
                actual = path.stat().st_size
            except FileNotFoundError:
                continue
            if actual > keep:
                os.truncate(path, keep)
                log.info("rldk_track: tensorboard: cut %d bytes written after record %d off %s (they are written again)",
                         actual - keep, seq, path)
            elif actual < keep and path.name == name:
                start = state.get("event_start_seq")
                seq = self._cut_lost_tail(path, keep, start if isinstance(start, int) and start <= seq else None, seq, resume)
        return seq

    def _cut_lost_tail(self, path: Path, recorded: int, start_seq: int | None, seq: int, resume: Resume) -> int:
        """Cut an event file that lost its tail (it is shorter than the ``recorded`` bytes that
        held record ``seq``) after the last record it wholly holds, and return that record.

        Every event of a record carries the record's wall time and step, and records are written
        in ``seq`` order, so the file's events are matched in order to the logged records after
        ``start_seq`` (the last record before the file). A run of events with one wall time
        starts one record's events; the last run may be torn, so the cut goes before it, and its
        record and all later ones are written again. Without ``start_seq`` (a state written before
        it was kept) a file with no placed event is left as it is, with a warning."""
        actual = path.stat().st_size
        records = takewhile(lambda r: r.seq <= seq, resume.records_after(-1 if start_seq is None else start_seq))
        keep, held, wall = 0, start_seq, None
        for begin, end, event in _whole_events(path):
            if event.HasField("file_version"):
                keep = end
                continue
            if event.wall_time == wall:
                continue
            wall = event.wall_time
            first = next((r for r in records if r.wall_time == wall and _clamp_step(getattr(r, "step", 0)) == event.step), None)
            if first is None:  # not one of the records: keep what is placed
                break
            keep, held = begin, first.seq - 1
        if held is None:
            self.warn_once("shorter", f"rldk_track: tensorboard: {path} is shorter than when it held record {seq} "
                           f"({actual} < {recorded} bytes); points written before the crash may be missing from it")
            return seq
        os.truncate(path, keep)
        self._side_lines_again(takewhile(lambda r: r.seq <= held, resume.records_after(
            -1 if start_seq is None else start_seq)))
        self.warn_once("lost-tail", f"rldk_track: tensorboard: {path} lost its last {recorded - actual} bytes "
                       f"(an OS crash?); cut after record {held} ({keep} bytes) and the records after it are written again")
        return held

    def _side_lines_again(self, records: Iterator[Record]) -> None:
        """Write again the side-file lines (``config.jsonl``, ``alerts.jsonl``, ``samples.jsonl``)
        of records a cut kept in the event file, where the OS crash lost them too (they are not
        fsynced either; each file skips a ``seq`` it holds)."""
        self._config_lines = {line["seq"] for line in _json_lines(self.log_dir / CONFIG_FILE)}
        for record in records:
            if isinstance(record, (Params, Tags)):
                self._config_line(record.seq, record.kind, record.values)
            elif isinstance(record, Alert):
                self._append_alert(record)
            elif isinstance(record, Samples):
                self._append_samples(record)

    def _write_again(self, records: Iterator[Record]) -> None:
        """Write records the dispatcher already counts as delivered but the event file lost to a
        cut (refused ones are refused again, and were kept the first time)."""
        for record in records:
            try:
                self.write([record])
            except RejectedError:
                continue

    def write(self, records: Sequence[Record]) -> Mapping[str, Any]:
        """Turn each record into events (and files) in order; flush before returning so that a
        record the dispatcher counts as delivered is in the event file, and return the state that
        says where the file stood then. Records already handed to the writer by an earlier,
        failed call are skipped."""
        try:
            for record in records:
                if record.seq <= self._done_seq:
                    continue
                handler = self._handlers.get(record.kind)
                if handler is not None:
                    try:
                        handler(record)
                    except (ValueError, TypeError, ArithmeticError) as exc:  # incl. UnicodeError
                        raise RejectedError(f"{record.kind} record {record.seq}: {type(exc).__name__}: {exc}") from exc
                self._done_seq = record.seq
        finally:
            self._settle()
        return self._state()

    def close(self) -> None:
        """Flush and close the event file, and make it durable (fsync): a run that finished keeps
        its points through an OS crash."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
            if self._event_file is not None:
                try:
                    fd = os.open(self._event_file, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                except OSError as exc:  # everything is written; only its durability is unknown
                    log.debug("rldk_track: tensorboard: fsync of %s: %s", self._event_file, exc)

    def describe(self) -> str:
        return f"tensorboard at {self.log_dir or self.root}"

    @classmethod
    def reopen(cls, origin: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The run directory the reader found (``log_dir``), under its ``--logdir`` root."""
        log_dir = Path(origin["log_dir"])
        return {"log_dir": str(log_dir.parent)}, {"log_dir": str(log_dir)}

    # -- the run directory -------------------------------------------------------------------
    def _claim_dir(self) -> Path:
        """``<root>/<name>``, or ``<root>/<name>-<run_id>`` when the first belongs to another run."""
        base = self._dir_name(self.run.name)
        for candidate in (base, f"{base}-{self.run.run_id}"):
            path = self.root / candidate
            owner = _owner(path)
            if owner == self.run.run_id:
                return path
            if owner is not None or path.is_dir() and any(path.iterdir()):
                continue  # another run's, or another tool's
            path.mkdir(parents=True, exist_ok=True)
            if self._write_owner(path, exclusive=True) or _owner(path) == self.run.run_id:
                return path
        raise FileExistsError(f"{self.root / base} and {self.root / (base + '-' + self.run.run_id)} both belong to other runs")

    def _dir_name(self, name: str) -> str:
        """The run name as one directory name (TensorBoard's run name)."""
        clean = "".join("_" if ch in "/\\" or ord(ch) < 32 else ch for ch in _clean(name)).strip()
        clean = clean.lstrip(".") or "run"
        encoded = clean.encode("utf-8")
        if len(encoded) > 200:  # file names are limited to 255 bytes; leave room for "-<run_id>"
            clean = encoded[:200].decode("utf-8", "ignore")
        if clean != name:
            self.warn_once("dirname", f"rldk_track: tensorboard: run name {name[:80]!r} is used as the directory name {clean[:80]!r}")
        return clean

    def _write_owner(self, path: Path, exclusive: bool = False, **extra: Any) -> bool:
        """Write ``rldk/run.json``; with ``exclusive`` only if no run claimed ``path`` first."""
        marker = path / OWNER_FILE
        marker.parent.mkdir(parents=True, exist_ok=True)
        info: OwnerFile = {"run_id": self.run.run_id, "name": self.run.name, "project": self.run.project,
                           "start_time": self.run.start_time, **extra}
        text = json.dumps(info, ensure_ascii=False, default=str)
        if exclusive:
            try:
                with open(marker, "x", encoding="utf-8") as f:
                    f.write(text)
            except FileExistsError:
                return False
            return True
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, marker)
        return True

    # -- the event file ----------------------------------------------------------------------
    def _open_writer(self) -> Any:
        if self._writer is None:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter

            self._after_newest_event_file()
            before = set(self.log_dir.glob("events.out.tfevents.*"))
            self._writer = EventFileWriter(str(self.log_dir), max_queue_size=self.max_queue, flush_secs=self.flush_secs)
            self._described = set()
            new = set(self.log_dir.glob("events.out.tfevents.*")) - before  # the writer names its file itself
            self._event_file = new.pop() if len(new) == 1 else None
            self._event_bytes = self._event_file.stat().st_size if self._event_file else 0
            self._event_start_seq = self._flushed_seq
        return self._writer

    def _after_newest_event_file(self) -> None:
        """Wait until a new event file will sort after the ones already in the run directory.

        TensorBoard reads a run's event files in name order, and a name starts with the second it
        was created in. A resumed run's file that sorted first would be read first, and its
        later steps would then hide the earlier file's points in the view.
        """
        seconds = [int(p.name.split(".")[3]) for p in self.log_dir.glob("events.out.tfevents.*")
                   if p.name.split(".")[3].isdigit()]
        if not seconds:
            return
        wait = max(seconds) + 1 - time.time()
        if wait > 2:
            self.warn_once(
                "clock", f"rldk_track: tensorboard: event files in {self.log_dir} come from a clock {wait:.0f} s ahead; "
                "TensorBoard may read this run's files out of order",
            )
        elif wait > 0:
            time.sleep(wait)

    def _drop_writer(self) -> None:
        """Close a broken writer and cut its file back to the last flush (the retry re-sends
        what came after it into a new file)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception as exc:  # already broken; the next write opens a new event file
                log.debug("rldk_track: tensorboard: closing a failed event writer: %s", exc)
        if self._event_file is not None:
            try:
                if self._event_file.stat().st_size > self._event_bytes:
                    os.truncate(self._event_file, self._event_bytes)  # frees blocks: works on a full disk
            except OSError as exc:
                log.debug("rldk_track: tensorboard: cutting back %s: %s", self._event_file, exc)

    def _settle(self) -> None:
        """Flush what was handed to the writer. A writer that cannot flush (disk full, file
        removed) is dropped: the retry starts a new event file and re-sends what it held."""
        try:
            if self._writer is not None and self._done_seq > self._flushed_seq:
                self._writer.flush()
                if self._event_file is not None:
                    self._event_bytes = self._event_file.stat().st_size
        except Exception:
            self._drop_writer()
            self._done_seq = self._flushed_seq
            raise
        self._flushed_seq = self._done_seq

    def _emit(self, step: int, wall_time: float, values: list[Any]) -> None:
        """One event holding ``values`` (one record = one event, so a record is all or nothing)."""
        if values:
            pb = self._pb
            event = pb.Event(wall_time=wall_time, step=self._step(step), summary=pb.Summary(value=values))
            self._open_writer().add_event(event)

    def _step(self, step: int) -> int:
        if INT64_MIN <= step <= INT64_MAX:
            return step
        self.warn_once("step-range", f"rldk_track: tensorboard: step {step} does not fit TensorBoard's 64-bit steps; clamped")
        return _clamp_step(step)

    def _scalar(self, tag: str, value: float) -> Any:
        if not math.isfinite(value) or abs(value) <= FLOAT32_MAX:
            return self._pb.Value(tag=tag, simple_value=value)
        self.warn_once(
            "float32", f"rldk_track: tensorboard: {tag[:80]!r} = {value!r} is beyond float32, TensorBoard's scalar type; stored as {math.copysign(math.inf, value)}"
        )
        return self._pb.Value(tag=tag, simple_value=math.copysign(math.inf, value))

    def _text(self, tag: str, text: str) -> Any:
        pb = self._pb
        tensor = pb.TensorProto(dtype=pb.DT_STRING, string_val=[_utf8(text)])
        if tag in self._described:
            return pb.Value(tag=tag, tensor=tensor)
        self._described.add(tag)
        return pb.Value(tag=tag, tensor=tensor, metadata=pb.text_metadata)

    # -- names -------------------------------------------------------------------------------
    def _tag(self, name: str, owner: str) -> str:
        """The tag for ``name`` in the series kind ``owner`` (``scalar:<source>`` or ``text``)."""
        key = (owner, name)
        tag = self._tags.get(key)
        if tag is not None:
            return tag
        tag, reason = tag_name(name)
        holder = self._tag_owner.get(tag)
        if holder is not None and holder != owner:
            wanted = tag
            tag = f"{wanted}/{owner.rpartition(':')[2]}"
            while tag in self._tag_owner and self._tag_owner[tag] != owner:
                tag = f"{wanted}~{hashlib.sha1(tag.encode('utf-8')).hexdigest()[:8]}"
            clash = f"is already the tag of a {_SERIES_KINDS.get(holder, holder)} series"
            reason = f"{reason} and {clash}" if reason else clash
        if reason:
            self._renamed(name, tag, reason)
        self._tag_owner[tag] = owner
        self._tags[key] = tag
        return tag

    def _renamed(self, name: str, tag: str, reason: str) -> None:
        self.warn_once(
            f"renamed:{reason[:12]}",
            f"rldk_track: tensorboard: name {name[:80]!r} {reason}; logged as {tag[:80]!r} "
            f"(every renamed name is listed in {self.log_dir / RENAMED_FILE})",
        )
        path = self.log_dir / RENAMED_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            renamed: RenamedTag = {"name": _clean(name), "tag": tag, "reason": reason}
            f.write(json.dumps(renamed, ensure_ascii=False) + "\n")


    # -- records -----------------------------------------------------------------------------
    def _run_start(self, record: RunStart) -> None:
        """A ``run_start`` after the first is a resumed attempt (e.g. from a checkpoint)."""
        if record.seq > 0:
            self._new_attempt = True

    def _metrics(self, record: Metrics) -> None:
        step = record.step
        if self._new_attempt:
            # TensorBoard's own resume marker (torch's SummaryWriter(purge_step=...) writes it):
            # its view drops what earlier attempts logged at this step and after, so steps
            # trained again after a checkpoint show once, as the latest attempt.
            self._new_attempt = False
            pb = self._pb
            self._open_writer().add_event(pb.Event(wall_time=record.wall_time, step=self._step(step),
                                                   session_log=pb.SessionLog(status=pb.SessionLog.START)))
            self._max_step = {name: last for name, last in self._max_step.items() if last < step}
        for name in record.values:  # per series: a late checkpoint record is not a step going back
            last = self._max_step.get(name)
            if last is not None and step < last:
                self.warn_once(
                    "backwards",
                    f"rldk_track: tensorboard: {name!r} went back from step {last} to {step}; the event file keeps "
                    "every point, but TensorBoard's view shows one point per step and drops a series' points after "
                    "a step that goes back",
                )
            if last is None or step > last:
                self._max_step[name] = step
        values = []
        for name, value in record.values.items():
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):
                self.warn_once(f"not-a-number:{name}", f"rldk_track: tensorboard: metric {name!r} = {value!r} is not a number; not logged")
                continue
            values.append(self._scalar(self._tag(name, "scalar:metrics"), number))
        self._emit(step, record.wall_time, values)

    def _params(self, record: Params) -> None:
        """A line in ``rldk/config.jsonl``, the hparams (first params record only) and, when due,
        the whole config as the ``config`` text."""
        deep_merge(self._config, record.values)
        self._rewrites[CONFIG_TAG].change(self._config_line(record.seq, "params", record.values))
        flat = flatten(record.values)
        if not self._hparams_written and flat:
            self._emit(0, record.wall_time, [self._session_start(flat, record.wall_time)])
            self._hparams_written = True
            self._hparam_names = set(flat)
        elif set(flat) - self._hparam_names:
            self.warn_once(
                "late-params",
                "rldk_track: tensorboard: params logged after the first ones are in the 'config' text only; "
                "TensorBoard keeps the first hparams of a run",
            )
        self._rewrite(record.wall_time, CONFIG_TAG)

    def _rewrite(self, wall_time: float, tag: str, final: bool = False) -> None:
        """Write the ``config`` or ``tags`` text in full if it changed and its budget allows
        (or, with ``final``, at the run's end)."""
        rewrites = self._rewrites[tag]
        if not (rewrites.due() or final and rewrites.dirty):
            return
        if tag == CONFIG_TAG:
            text = _fenced(_to_json_text(self._config), "json")
        else:
            text = _table(self._run_tags, ("tag", "value"))
        self._emit(0, wall_time, [self._text(self._tag(tag, "text"), text)])
        rewrites.wrote(len(text))

    def _config_line(self, seq: int, kind: str, values: Mapping[str, Any]) -> int:
        """Append a params/tags record to ``rldk/config.jsonl`` (once per ``seq``); its size."""
        line: ConfigLine = {"seq": seq, "kind": kind, "values": dict(values)}
        text = json.dumps(line, ensure_ascii=False, default=str) + "\n"
        if seq not in self._config_lines:
            path = self.log_dir / CONFIG_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(text)
            self._config_lines.add(seq)
        return len(text)

    def _restore_config(self, upto_seq: int) -> None:
        """The config and tags an earlier process delivered (``rldk/config.jsonl`` up to
        ``upto_seq``; later lines come again with their records), so the texts stay whole."""
        lines = sorted(_json_lines(self.log_dir / CONFIG_FILE), key=lambda line: line["seq"])
        self._config_lines = {line["seq"] for line in lines}
        for line in lines:
            values = line.get("values")
            if line["seq"] > upto_seq:
                break
            if not isinstance(values, dict):
                continue
            if line.get("kind") == "params":
                if not self._hparams_written:
                    self._hparams_written, self._hparam_names = True, set(flatten(values))
                deep_merge(self._config, values)
            else:
                self._run_tags.update(values)
        # the texts are written again once (a crash may have kept the last ones from being written)
        if self._config:
            self._rewrites[CONFIG_TAG].change(len(json.dumps(self._config, default=str)))
        if self._run_tags:
            self._rewrites[TAGS_TAG].change(len(json.dumps(self._run_tags, default=str)))

    def _session_start(self, flat: Mapping[str, Any], wall_time: float) -> Any:
        pb = self._pb
        info = pb.SessionStartInfo(start_time_secs=self.run.start_time or wall_time)
        for name, value in flat.items():
            key = tag_name(name)[0]
            target = info.hparams[key]
            if isinstance(value, bool):
                target.bool_value = value
            elif isinstance(value, float) and math.isfinite(value) or isinstance(value, int) and abs(value) < 2**53:
                target.number_value = value
            else:
                text = value if isinstance(value, str) else (
                    str(value) if isinstance(value, (int, float)) or value is None
                    else json.dumps(value, ensure_ascii=False, default=str))
                if len(text) > MAX_HPARAM_CHARS:
                    self.warn_once(
                        "long-hparam",
                        f"rldk_track: tensorboard: hparam {name[:80]!r} is longer than {MAX_HPARAM_CHARS} characters; "
                        "shortened in the hparams view (the full value is in the 'config' text)",
                    )
                    text = text[: MAX_HPARAM_CHARS - 1] + "…"
                target.string_value = _clean(text)
        content = pb.HParamsPluginData(session_start_info=info)
        return pb.Value(tag=pb.SESSION_START_INFO_TAG, tensor=pb.NULL_TENSOR, metadata=pb.hparams_metadata(content))

    def _tags_record(self, record: Tags) -> None:
        """A line in ``rldk/config.jsonl`` and, when due, all tags so far as the ``tags`` table."""
        self._run_tags.update(record.values)
        self._rewrites[TAGS_TAG].change(self._config_line(record.seq, "tags", record.values))
        self._rewrite(record.wall_time, TAGS_TAG)

    def _summary(self, record: Summary) -> None:
        values = []
        for name, value in flatten(record.values).items():
            if isinstance(value, (int, float)):
                values.append(self._scalar(self._tag(SUMMARY_PREFIX + name, "scalar:summary"), float(value)))
            else:
                text = value if isinstance(value, str) else _fenced(_to_json_text(value), "json")
                values.append(self._text(self._tag(SUMMARY_PREFIX + name, "text"), text))
        self._emit(0, record.wall_time, values)

    def _alert(self, record: Alert) -> None:
        """The alert policy (:mod:`rldk_track.alerts`) in TensorBoard: text ``alerts/<rule>`` at the
        alert's step (its fields as a table) and a line in ``rldk/alerts.jsonl``."""
        entry = alert_json(record)
        fields = {k: entry[k] for k in ("message", *ALERT_FIELDS) if k not in _NOT_IN_ALERT_TEXT}
        text = f"**{record.severity}** `{record.rule}` at step {record.step} ({record.state})\n\n" + _table(
            {k: v for k, v in fields.items() if v is not None}
        )
        if record.evidence is not None:
            text += "\n\n" + _evidence_text(record.evidence)
        self._emit(record.step, record.wall_time, [self._text(self._tag(ALERT_PREFIX + record.rule, "text"), text)])
        self._append_alert(record)

    def _append_alert(self, record: Alert) -> None:
        path = self.log_dir / ALERTS_FILE
        if self._alerts is None:  # after a restart: what an earlier process already wrote
            self._alerts = AlertLog.from_jsonl(path.read_text(encoding="utf-8") if path.exists() else "")
        if record.seq in self._alerts:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(alert_line(alert_json(record)))
        self._alerts.add(record)

    def _samples(self, record: Samples) -> None:
        """Text ``samples/<name>`` at the samples' step (a markdown table, one row a sample) and a
        line in ``rldk/samples.jsonl`` (the exact cells, for readers)."""
        header = "| " + " | ".join(_cell(c) for c in record.columns) + " |"
        lines = [header, "|" + "---|" * len(record.columns)]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in record.rows]
        if record.notes:
            lines += ["", *[f"*{_cell(note)}*" for note in record.notes]]
        tag = self._tag(SAMPLES_PREFIX + record.name, "text")
        self._emit(record.step, record.wall_time, [self._text(tag, "\n".join(lines))])
        self._append_samples(record)

    def _append_samples(self, record: Samples) -> None:
        path = self.log_dir / SAMPLES_FILE
        if self._samples_written is None:  # after a restart: what an earlier process already wrote
            self._samples_written = {line["seq"] for line in _json_lines(path)}
        if record.seq in self._samples_written:
            return
        line: SamplesLine = {"seq": record.seq, "step": record.step, "name": record.name,
                             "columns": list(record.columns), "rows": [list(row) for row in record.rows]}
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._samples_written.add(record.seq)

    def _artifact(self, record: Artifact) -> None:
        artifacts = (self.log_dir / ARTIFACTS_DIR).resolve()
        target = (artifacts / record.name).resolve()
        if artifacts not in target.parents:
            raise RejectedError(f"artifact name {record.name!r} leaves the run's artifacts folder")
        source = Path(record.path or "")
        if not record.path or not source.exists():
            raise RejectedError(f"artifact {record.name!r}: staged file {record.path!r} is missing")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)

    def _checkpoint(self, record: CheckpointHealth) -> None:
        """Text ``checkpoint/health`` at the checkpoint's step and ``rldk/checkpoints/step_<N>/health.json``.
        No scalars: the ``checkpoint/*`` series come from the analyzer's ``Metrics`` record."""
        lines = [f"**health score {record.score:g}** for `{record.path}` at step {record.step}"]
        if record.issues:
            lines += ["", "Issues:", *[f"- {_cell(issue)}" for issue in record.issues]]
        if record.recommendations:
            lines += ["", "Recommendations:", *[f"- {_cell(r)}" for r in record.recommendations]]
        if record.stats:
            lines += ["", _table(flatten(record.stats), ("stat", "value"))]
        self._emit(record.step, record.wall_time, [self._text(self._tag(CHECKPOINT_PREFIX + "health", "text"), "\n".join(lines))])
        report = self.log_dir / checkpoint_folder(record.step) / "health.json"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(to_json(record, self.run.run_id), ensure_ascii=False, indent=2, default=str), encoding="utf-8")

    def _run_end(self, record: RunEnd) -> None:
        pb = self._pb
        status = {"success": pb.STATUS_SUCCESS}.get(record.status, pb.STATUS_FAILURE)
        end = pb.HParamsPluginData(session_end_info=pb.SessionEndInfo(status=status, end_time_secs=record.wall_time))
        for tag in (CONFIG_TAG, TAGS_TAG):  # whatever a budget held back
            self._rewrite(record.wall_time, tag, final=True)
        values = [] if self._hparams_written else [self._session_start({}, record.wall_time)]  # list the run in HParams
        values += [
            pb.Value(tag=pb.SESSION_END_INFO_TAG, tensor=pb.NULL_TENSOR, metadata=pb.hparams_metadata(end)),
            self._text(self._tag(STATUS_TAG, "text"), record.status),
        ]
        self._emit(0, record.wall_time, values)
        self._write_owner(self.log_dir, status=record.status, end_time=record.wall_time)


class _Protos:
    """TensorBoard's protos and plugin metadata, imported when the backend opens (not at
    ``import rldk_track``)."""

    def __init__(self) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
        from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
        from tensorboard.plugins.hparams import metadata as hparams_md
        from tensorboard.plugins.text import metadata as text_md

        self.Event = event_pb2.Event
        self.SessionLog = event_pb2.SessionLog
        self.Summary = summary_pb2.Summary
        self.Value = summary_pb2.Summary.Value
        self.TensorProto = tensor_pb2.TensorProto
        self.DT_STRING = types_pb2.DT_STRING
        self.HParamsPluginData = plugin_data_pb2.HParamsPluginData
        self.SessionStartInfo = plugin_data_pb2.SessionStartInfo
        self.SessionEndInfo = plugin_data_pb2.SessionEndInfo
        self.STATUS_SUCCESS = api_pb2.STATUS_SUCCESS
        self.STATUS_FAILURE = api_pb2.STATUS_FAILURE
        self.SESSION_START_INFO_TAG = hparams_md.SESSION_START_INFO_TAG
        self.SESSION_END_INFO_TAG = hparams_md.SESSION_END_INFO_TAG
        self.HPARAMS_TAGS = (hparams_md.EXPERIMENT_TAG, self.SESSION_START_INFO_TAG, self.SESSION_END_INFO_TAG)
        self.NULL_TENSOR = hparams_md.NULL_TENSOR
        self.hparams_metadata = hparams_md.create_summary_metadata
        self.text_metadata = text_md.create_summary_metadata(display_name="", description="")


def _json_lines(path: Path) -> list[dict[str, Any]]:
    """The complete, well-formed lines of a JSON-lines file that carry a ``seq`` (none if missing)."""
    out: list[dict[str, Any]] = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("seq"), int):
                out.append(obj)
    return out


def _later_file_of_same_writer(name: str, than: str) -> bool:
    """Whether event file ``name`` was started after ``than`` by the same process: TensorBoard
    names a file ``events.out.tfevents.<second>.<host>.<pid>.<n>``, ``n`` counting the process's
    writers. (Names alone do not order files of different hosts: their clocks differ.)"""
    def parts(file_name: str) -> tuple[int, str, int] | None:
        head, _, rest = file_name.partition("events.out.tfevents.")
        second, _, writer = rest.partition(".")
        process, _, counter = writer.rpartition(".")
        if head or not second.isdigit() or not counter.isdigit() or not process:
            return None
        return int(second), process, int(counter)

    mine, theirs = parts(name), parts(than)
    return bool(mine and theirs and mine[1] == theirs[1] and mine[2] > theirs[2] and mine[0] >= theirs[0])


def _clamp_step(step: int) -> int:
    """``step`` as an event's 64-bit step."""
    return max(INT64_MIN, min(INT64_MAX, step))


def _whole_events(path: Path) -> Iterator[tuple[int, int, Any]]:
    """``(start, end, event)`` for each event of an event file from its start, up to the first
    one that is not whole (TFRecord framing: 8-byte length, 4-byte masked CRC-32C of it, data,
    4-byte masked CRC-32C of the data; checked as TensorBoard's own record reader checks them)."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    with open(path, "rb") as f:
        begin = 0
        while True:
            head = f.read(12)
            if len(head) < 12 or masked_crc32c(head[:8]) != int.from_bytes(head[8:], "little"):
                return
            length = int.from_bytes(head[:8], "little")
            data = f.read(length)
            crc = f.read(4)
            if len(data) < length or len(crc) < 4 or masked_crc32c(data) != int.from_bytes(crc, "little"):
                return
            try:
                event = Event.FromString(data)
            except DecodeError:  # a whole frame that is not an event: nothing after it can be placed
                return
            end = begin + 16 + length
            yield begin, end, event
            begin = end


def _header_bytes(path: Path) -> int:
    """The size of an event file's first record (the ``file_version`` event every writer starts
    with; TFRecord framing: 8-byte length, 4-byte CRC, data, 4-byte CRC); 0 if it has none."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return 0
    return 8 + 4 + int.from_bytes(head, "little") + 4 if len(head) == 8 else 0


def _owner(path: Path) -> str | None:
    """The run id that claimed ``path`` (None when no rldk_track run did)."""
    try:
        return str(json.loads((path / OWNER_FILE).read_text(encoding="utf-8"))["run_id"])
    except (FileNotFoundError, NotADirectoryError, ValueError, KeyError, TypeError):
        return None
