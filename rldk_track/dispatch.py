"""Move records from the training thread to the event log and then to every tracker.

Shape (after OpenTelemetry's batch span processor): the producer only enqueues; one *log thread*
numbers each record (``seq`` = its line in the event log), stages artifact files, appends the
batch to the event log (the write-ahead log), runs the observers (analyzers) and hands the batch
to each :class:`BackendWorker`. Every backend has its own worker thread, so a slow tracker never
holds up another. A worker that falls too far behind drops its in-memory queue and reads the
event log instead until it has caught up; the same path lets ``rldk-track sync`` finish a
crashed run. ``flush`` and ``close`` take timeouts and report what is still pending.
"""

from __future__ import annotations

# Importing concurrent.futures.thread registers a threading exit hook, which Python refuses once
# the main thread has finished; tracker libraries import it lazily from our worker threads, so a
# short script that ends before they start would break them. Importing it here prevents that.
import concurrent.futures.thread  # noqa: F401
import dataclasses
import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from rldk_track import lifecycle
from rldk_track.backends.base import Backend, Resume, refuses_data
from rldk_track.eventlog import (
    EventLogWriter,
    append_rejected,
    encode_lines,
    read_cursor,
    read_records,
    stage_artifact,
    write_cursor,
)
from rldk_track.layout import RunLayout
from rldk_track.normalize import valid_text
from rldk_track.observer import Observer, Observers
from rldk_track.records import Artifact, Record, RunEnd, Samples
from rldk_track.runlock import RunLock
from rldk_track.samples import SampleBounder, SampleLimits, row_count

log = logging.getLogger("rldk_track")

LOG_BATCH = 10_000
#: Megabytes of records a backend worker holds in memory before it reads the event log instead
#: (``RLDK_MAX_PENDING_MB`` overrides; see :func:`pending_limit`).
DEFAULT_PENDING_MB = 64.0
PENDING_ENV = "RLDK_MAX_PENDING_MB"
#: A record's memory, estimated from its event-log line: Python's objects for a metrics record
#: take 2.1x (1 metric) to 3.6x (200 metrics) the line's bytes (tracemalloc), so 4x.
MEMORY_PER_LINE_BYTE = 4
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 30.0
#: Records the training thread may queue ahead of the log thread, a ``Samples`` record counted as
#: its rows (a 64-row set of ~1 KB completions is ~70 KB, a 50-metric record ~6 KB); past it
#: ``run.log`` waits for the log thread (backpressure), or drops while the log thread is stuck
#: (see ``Dispatcher.submit``).
MAX_QUEUED = 20_000
#: Seconds without the log thread taking a batch, with the queue full, before it is deemed stuck.
STUCK_AFTER_S = 30.0
#: Seconds ``finish`` waits for a tracker before it says what it is waiting for.
SAY_WAITING_AFTER_S = 2.0
#: Seconds more ``finish`` gives a tracker that was never reachable during the run.
NEVER_REACHED_GRACE_S = 5.0


def _rows_beyond_one(record: Samples) -> int:
    """What a Samples record weighs in the training thread's queue beyond one record."""
    return max(row_count(record), 1) - 1


@dataclass(frozen=True)
class DeliveryReport:
    """The outcome of ``flush``/``finish``: ``pending`` counts the records each backend has not
    received yet (they are safe in the event log and will follow, or ``rldk-track sync``)."""

    complete: bool
    pending: Mapping[str, int]
    event_log: Path | None
    #: records the event log could not take (a full disk): they exist only where ``lost`` says
    #: nothing was dropped
    unlogged: int = 0
    #: records each tracker will never get: dropped from its bounded memory while the event log
    #: was off or unwritable
    lost: Mapping[str, int] = dataclasses.field(default_factory=dict)
    #: records ``run.log`` dropped because the log thread was stuck with its queue full: they
    #: are nowhere
    dropped: int = 0

    def __bool__(self) -> bool:
        return self.complete

    def describe(self) -> str:
        if self.complete:
            return "all records delivered"
        parts = []
        behind = ", ".join(f"{name}: {n} records" for name, n in self.pending.items() if n)
        if behind:
            where = f"; they are in {self.event_log} (rldk-track sync {self.event_log.parent.parent})" if self.event_log else ""
            parts.append(f"not yet delivered: {behind}{where}")
        if self.unlogged:
            parts.append(f"{self.unlogged} records are not in the event log (it could not be written)")
        dropped = ", ".join(f"{name}: {n} records" for name, n in self.lost.items() if n)
        if dropped:
            parts.append(f"never delivered (dropped from memory): {dropped}")
        if self.dropped:
            parts.append(f"{self.dropped} records were dropped before they were logged (the log thread was stuck)")
        return "; ".join(parts) or "not complete"


def pending_limit() -> int:
    """The in-memory bound of each backend worker, in bytes: ``RLDK_MAX_PENDING_MB`` (a positive
    number of megabytes, default :data:`DEFAULT_PENDING_MB`). A bad value fails fast."""
    raw = os.environ.get(PENDING_ENV, "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_PENDING_MB
    except ValueError:
        mb = -1.0
    if not mb > 0:
        raise ValueError(f"{PENDING_ENV}={raw!r}: give a positive number of megabytes (default {DEFAULT_PENDING_MB:g})")
    return int(mb * 2**20)


def record_sizes(lines: Sequence[bytes]) -> list[int]:
    """Each record's estimated memory from its event-log line (:data:`MEMORY_PER_LINE_BYTE`)."""
    return [MEMORY_PER_LINE_BYTE * len(line) for line in lines]


class _Barrier:
    __slots__ = ("done", "seq")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.seq = -1


class _Stop(_Barrier):
    __slots__ = ("status",)

    def __init__(self, status: str) -> None:
        super().__init__()
        self.status = status


class BackendWorker:
    """Delivers records to one backend on its own thread, in order, with retries.

    ``submit`` (called by the log thread) only appends to a bounded in-memory queue. Past
    ``max_pending_bytes`` (each record's size estimated from its event-log line, on the log
    thread) the worker drops that queue and reads the event log from its cursor (when there is
    one) until it has caught up, so a tracker that is down for hours costs bounded memory and
    loses nothing.
    """

    def __init__(
        self,
        backend: Backend,
        layout: RunLayout,
        *,
        has_event_log: bool,
        max_pending_bytes: int | None = None,
        catch_up: bool = False,
        from_start: bool = False,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.name = backend.name
        self._layout = layout
        self._cursor_path = layout.cursor(self.name) if has_event_log else None
        self._has_event_log = has_event_log
        self._log_ok = True
        #: whether the tracker was reached (``open`` succeeded) in this process
        self.opened = False
        self.open_failed = False  # an attempt to open raised (a dead URI), not merely still opening
        self._max_bytes = max_pending_bytes or pending_limit()
        fresh = {"seq": -1, "state": state}  # state: an ended tracker run to reopen (write-back)
        cursor = read_cursor(self._cursor_path) if self._cursor_path and not from_start else fresh
        self._state: Mapping[str, Any] | None = cursor.get("state")
        self._delivered = int(cursor.get("seq", -1))
        self._written = self._delivered
        self._pending: deque[tuple[Record, int]] = deque()  # (record, estimated bytes)
        self._pending_bytes = 0
        #: the most bytes the in-memory queue has held (at most the bound)
        self.peak_pending_bytes = 0
        self._from_log = catch_up  # read the event log instead of the queue until caught up
        self._log_offset = 0
        self._closing = False
        self._flushing = 0  # threads waiting in wait_delivered
        self._closed = threading.Event()
        #: set when the worker has delivered everything and closed, just before ``wait_closed``
        #: returns; ``on_done`` is called then (the dispatcher releases the run's lock)
        self.done = False
        self.on_done: Callable[[], None] | None = None
        self._lost = 0
        self._rejected = 0
        self._reject_file_failed = False
        self._cursor_failed = False
        self._down_since: float | None = None
        self._cv = threading.Condition()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rldk-{self.name}", daemon=True)

    # -- called from the log thread ------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, records: Sequence[Record], sizes: Sequence[int] | None = None) -> None:
        """Queue ``records``; ``sizes`` are each one's estimated bytes (:func:`record_sizes` of the
        lines the log thread wrote), worked out here when not given (a write-back)."""
        supported = self.backend.supports
        if sizes is None:
            sizes = record_sizes(encode_lines(records, self._layout.run_id))
        with self._cv:
            self._written = records[-1].seq
            if not self._from_log:
                wanted = [(r, n) for r, n in zip(records, sizes) if r.kind in supported]
                added = sum(n for _, n in wanted)
                if self._pending_bytes + added > self._max_bytes:
                    self._overflow(wanted, added)
                else:
                    self._pending.extend(wanted)
                    self._pending_bytes += added
                self.peak_pending_bytes = max(self.peak_pending_bytes, self._pending_bytes)
            self._cv.notify_all()

    @property
    def pending_bytes(self) -> int:
        """Estimated bytes of the records held in memory for this tracker (at most the bound)."""
        with self._cv:
            return self._pending_bytes

    def set_event_log_ok(self, ok: bool) -> None:
        """The log thread says whether the event log is being written (False: a full disk).
        While it is not, this worker holds at most ``max_pending_bytes`` of records in memory,
        dropping the oldest, instead of catching up from a log that lacks them."""
        with self._cv:
            self._log_ok = ok
            self._cv.notify_all()

    def _overflow(self, wanted: list[tuple[Record, int]], added: int) -> None:
        if self._has_event_log and self._log_ok:
            log.warning(
                "rldk_track: %s is %d records (%.0f MB in memory) behind; it will catch up from the event log %s",
                self.name, len(self._pending) + len(wanted), (self._pending_bytes + added) / 2**20,
                self._layout.event_log,
            )
            self._pending.clear()
            self._pending_bytes = 0
            self._from_log = True
            return
        self._pending.extend(wanted)
        self._pending_bytes += added
        dropped = 0
        while self._pending_bytes > self._max_bytes:
            self._pending_bytes -= self._pending.popleft()[1]
            dropped += 1
        if not self._lost and dropped:
            why = "cannot be written" if self._has_event_log else "is off (RLDK_DISABLE_JSONL=1)"
            log.error(
                "rldk_track: %s is more than %.0f MB of records behind and the event log %s: dropping "
                "the oldest records", self.name, self._max_bytes / 2**20, why,
            )
        self._lost += dropped

    def catch_up_to(self, seq: int) -> None:
        """Deliver the event log up to ``seq`` (used by ``sync``, where nothing is submitted)."""
        with self._cv:
            self._written = max(self._written, seq)
            self._from_log = self._delivered < self._written
            self._cv.notify_all()

    def request_close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._wake.set()

    # -- called from any thread ----------------------------------------------------------
    def behind(self) -> int:
        with self._cv:
            return max(0, self._written - self._delivered)

    def wait_delivered(self, seq: int, deadline: float) -> bool:
        with self._cv:
            self._flushing += 1
            self._cv.notify_all()  # ends a linger at once
            try:
                while self._delivered < seq:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cv.wait(remaining)
                return True
            finally:
                self._flushing -= 1

    def wait_closed(self, deadline: float) -> bool:
        return self._closed.wait(max(0.0, deadline - time.monotonic()))

    @property
    def rejected(self) -> int:
        """Records the tracker refused (kept in the rejected file when there is an event log)."""
        return self._rejected

    @property
    def lost(self) -> int:
        """Records dropped because memory was full and there was no event log."""
        return self._lost

    # -- the worker thread ---------------------------------------------------------------
    def _run(self) -> None:
        self._open()
        failures = 0
        batch: list[Record] | None = None
        while True:
            try:
                if batch is None:
                    batch = self._next_batch()
                    if batch is None:
                        break
                if batch:
                    self._deliver(batch)
                self._advance(batch)
            except Exception:  # a bug or a vanished run dir must not end delivery for good
                failures += 1
                if failures == 1:
                    log.exception("rldk_track: %s worker hit an unexpected error; it keeps going", self.name)
                self._wake.wait(min(RETRY_MAX_S, RETRY_INITIAL_S * 2**failures))
                continue  # with the same batch: it was taken from memory, it must not be lost
            ended = any(r.kind == RunEnd.kind for r in batch)
            batch = None
            if ended:
                break
        try:
            self.backend.close()
        except Exception as exc:  # a close failure loses nothing: everything was delivered
            log.warning("rldk_track: closing %s failed: %s", self.name, exc)
        self.done = True
        if self.on_done is not None:
            self.on_done()
        self._closed.set()

    def _open(self) -> None:
        resume = Resume(self._delivered, self._logged_after)
        def attempt() -> None:
            try:
                self._set_state(self.backend.open(self._state, resume))
            except Exception:
                self.open_failed = True
                raise

        self._retry(attempt, "start", rejectable=False)
        self.opened = True
        lifecycle.finish_runs_first()  # the tracker library may have just registered its own exit hook
        self._persist()

    def _logged_after(self, seq: int) -> Iterator[Record]:
        """The event log's records after ``seq`` that this backend supports (a backend's resume)."""
        if not self._has_event_log or not self._layout.event_log.exists():
            return
        for _, record in read_records(self._layout.event_log, seq):
            if record.kind in self.backend.supports:
                yield record

    def _set_state(self, state: Mapping[str, Any] | None) -> None:
        """Keep the backend's resume state (None: unchanged); it is persisted with the cursor."""
        if state is not None:
            self._state = dict(state)

    def _next_batch(self) -> list[Record] | None:
        limit = self.backend.max_batch
        with self._cv:
            while not self._pending and not self._from_log:
                if self._delivered < self._written:  # what was submitted was all filtered out
                    self._delivered = self._written
                    self._cv.notify_all()
                if self._closing:
                    return None
                self._cv.wait(1.0)
            self._linger(limit)
            if not self._from_log:
                batch = []
                for _ in range(min(limit, len(self._pending))):
                    record, size = self._pending.popleft()
                    self._pending_bytes -= size
                    batch.append(record)
                return batch
        return self._read_log(limit)

    def _linger(self, limit: int) -> None:
        """Wait up to the backend's ``linger_s`` for a fuller batch (one request instead of many),
        unless someone is flushing or the run is closing. Called holding ``_cv``."""
        deadline = time.monotonic() + self.backend.linger_s
        while (len(self._pending) < limit and not self._from_log and not self._closing and not self._flushing):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cv.wait(remaining)

    def _read_log(self, limit: int) -> list[Record] | None:
        """The next records after ``_delivered`` from the event log; ends catch-up at its end."""
        batch: list[Record] = []
        last_seen = self._delivered
        for offset, record in read_records(self._layout.event_log, self._delivered, self._log_offset):
            self._log_offset = offset
            last_seen = record.seq
            if record.kind in self.backend.supports:
                batch.append(record)
                if len(batch) >= limit:
                    break
        if batch:
            return batch
        with self._cv:
            self._delivered = max(self._delivered, last_seen)
            if self._delivered < self._written and not self._log_ok:  # the log lacks the rest
                self._lost += self._written - self._delivered
                self._delivered = self._written
            if self._delivered >= self._written:
                self._from_log = False
                self._cv.notify_all()
                if self._closing:
                    return None
            else:
                self._cv.wait(0.2)
        return []

    def _deliver(self, batch: list[Record]) -> None:
        try:
            self._retry(lambda: self._set_state(self.backend.write(batch)), "deliver to")
        except Exception as exc:  # only what refuses_data() lets out of _retry
            if len(batch) == 1:
                self._reject(batch[0], exc)
                return
            middle = len(batch) // 2
            self._deliver(batch[:middle])
            self._deliver(batch[middle:])

    def _retry(self, call: Callable[[], None], what: str, rejectable: bool = True) -> None:
        """Run ``call`` until it succeeds or (if ``rejectable``) the tracker rejects the data,
        backing off between tries; a tracker that is down is reported once, and again when it
        is back."""
        delay = RETRY_INITIAL_S
        while True:
            try:
                call()
            except Exception as exc:
                if rejectable and refuses_data(exc):
                    raise
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning(
                        "rldk_track: could not %s %s (%s: %s); retrying with backoff, records are kept in the event log",
                        what, self.backend.describe(), type(exc).__name__, str(exc)[:300],
                    )
                self._wake.wait(delay)
                self._wake.clear()
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if self._down_since is not None:
                log.warning("rldk_track: %s is reachable again after %.0f s", self.backend.describe(),
                            time.monotonic() - self._down_since)
                self._down_since = None
            return

    def _reject(self, record: Record, exc: Exception) -> None:
        self._rejected += 1
        if self._rejected == 1:
            log.warning(
                "rldk_track: %s refused a record (%s); refused records are kept in %s",
                self.name, str(exc)[:300], self._layout.rejected(self.name),
            )
        if not self._has_event_log:
            return
        try:
            append_rejected(self._layout.rejected(self.name), record, exc, self._layout.run_id)
        except OSError as write_error:  # the record is still in the event log; the rest goes on
            if not self._reject_file_failed:
                self._reject_file_failed = True
                log.warning("rldk_track: could not keep %s's refused records in %s (%s); they stay in the event log",
                            self.name, self._layout.rejected(self.name), write_error)

    def _advance(self, batch: list[Record]) -> None:
        with self._cv:
            before = self._delivered
            if batch:
                self._delivered = max(self._delivered, batch[-1].seq)
            if not self._pending and not self._from_log:
                self._delivered = max(self._delivered, self._written)
            if self._delivered == before:
                return
        self._persist()  # before waking flush(): a flushed position is a persisted one
        with self._cv:
            self._cv.notify_all()

    def _persist(self) -> None:
        if not self._cursor_path:
            return
        try:
            write_cursor(self._cursor_path, self._delivered, self._state)
        except OSError as exc:  # the delivery itself succeeded; a later sync may resend (idempotent)
            if not self._cursor_failed:
                self._cursor_failed = True
                log.warning("rldk_track: could not record %s's delivery position: %s", self.name, exc)


class Dispatcher:
    """Owns the log thread and the backend workers of one run."""

    def __init__(
        self,
        layout: RunLayout,
        event_log: EventLogWriter | None,
        workers: Sequence[BackendWorker],
        observers: Sequence[Observer] = (),
        next_seq: int = 0,
        sample_limits: SampleLimits | None = None,
        run_lock: RunLock | None = None,
    ) -> None:
        self.layout = layout
        #: The run's lock (one writer per run), released once the run has ended and every
        #: worker has closed: until then this process still writes the run's files.
        self.run_lock = run_lock
        #: Bounds sample records on the log thread, as ``_stage`` copies artifacts.
        self.samples = SampleBounder(sample_limits)
        self.workers = list(workers)
        self.observers = Observers(observers)
        self._event_log = event_log
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        #: what the queued Samples records weigh beyond one each (their rows - 1); :meth:`queued`
        self._extra_rows = 0
        self._extra_lock = threading.Lock()  # both threads change it; only for Samples records
        self._took = threading.Event()  # set by the log thread each time it takes from the queue
        self._stuck = False
        #: records ``submit`` dropped while the log thread was stuck
        self.dropped = 0
        self._next_seq = next_seq
        #: records that could not be written to the event log (a full disk), and why
        self.unlogged = 0
        self._log_error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="rldk-log", daemon=True)
        self._stopped = threading.Event()
        self._final_seq = -1
        for worker in self.workers:
            worker.on_done = self._release_when_done
            worker.start()
        self._thread.start()

    def add_observer(self, observer: Observer) -> None:
        """Observe later batches too (safe while the log thread feeds the others)."""
        self.observers.add(observer)

    # -- training thread -----------------------------------------------------------------
    def submit(self, record: Record) -> None:
        """Enqueue a record (``seq`` is assigned on the log thread). Never blocks while the queue
        weighs less than :data:`MAX_QUEUED` (:meth:`queued`: one ``qsize`` call and an addition for
        a metrics record; a Samples record also takes a lock to add its rows)."""
        if self.queued() >= MAX_QUEUED and not self._room_for_one():
            self.dropped += 1
            return
        if type(record) is Samples:
            self._add_rows(_rows_beyond_one(record))
        self._queue.put(record)

    def queued(self) -> int:
        """What waits for the log thread, in records, a Samples record counted as its rows
        (at least one): the count :data:`MAX_QUEUED` bounds."""
        return self._queue.qsize() + self._extra_rows

    def _add_rows(self, rows: int) -> None:
        if rows:
            with self._extra_lock:
                self._extra_rows += rows

    def _room_for_one(self) -> bool:
        """The queue is full, so the caller logs faster than the log thread writes: wait until it
        takes its next batch (backpressure). If it takes none for :data:`STUCK_AFTER_S` (a write
        that hangs), it is stuck: say so once and drop records (False) until it takes again."""
        if threading.current_thread() is self._thread:
            return True  # the log thread itself (an observer's record) never waits for itself
        while self.queued() >= MAX_QUEUED:
            if self._stuck:
                return False
            self._took.clear()
            if self.queued() < MAX_QUEUED:
                return True
            if not self._took.wait(STUCK_AFTER_S):
                self._stuck = True
                log.error("rldk_track: the log thread has taken no record for %g s with %d waiting (a hung "
                          "disk write?); records logged now are dropped until it moves again",
                          STUCK_AFTER_S, self.queued())
        return True

    def flush(self, timeout: float) -> DeliveryReport:
        """Wait until everything submitted so far is durable in the event log and delivered to
        every backend, or until ``timeout`` seconds have passed."""
        deadline = time.monotonic() + timeout
        barrier = _Barrier()
        if self._stopped.is_set():
            barrier.seq = self._final_seq
        else:
            self._queue.put(barrier)
            if not barrier.done.wait(max(0.0, deadline - time.monotonic())):
                return self._report(False)
        complete = all([w.wait_delivered(barrier.seq, deadline) for w in self.workers])
        return self._report(complete)

    def close(self, status: str, timeout: float) -> DeliveryReport:
        """End the run: observers finish, ``RunEnd(status)`` is logged, backends close."""
        deadline = time.monotonic() + timeout
        stop = _Stop(status)
        self._queue.put(stop)
        if not stop.done.wait(max(0.0, deadline - time.monotonic())):
            return self._report(False)
        complete = all([self._wait_closed(w, deadline) for w in self.workers])
        return self._report(complete)

    def _wait_closed(self, worker: "BackendWorker", deadline: float) -> bool:
        """Wait for ``worker`` to deliver the rest and close, saying after
        :data:`SAY_WAITING_AFTER_S` what is waited for; a tracker never reached since the run
        started is given only :data:`NEVER_REACHED_GRACE_S` more when the event log holds its
        records (``rldk-track sync`` delivers them later)."""
        if worker.wait_closed(min(deadline, time.monotonic() + SAY_WAITING_AFTER_S)):
            return True
        sync = f"rldk-track sync {self.layout.dir}" if self._event_log else ""
        if self._event_log and not worker.opened and worker.open_failed:  # a slow sqlite store is still opening
            if worker.wait_closed(min(deadline, time.monotonic() + NEVER_REACHED_GRACE_S)):
                return True
            log.warning("rldk_track: %s was never reachable during this run; not waiting for it: its %d records "
                        "are in the event log for `%s`", worker.backend.describe(), worker.behind(), sync)
            return False
        log.warning("rldk_track: delivering %d records to %s (waiting at most %.0f s more)%s", worker.behind(),
                    worker.backend.describe(), max(0.0, deadline - time.monotonic()),
                    f"; Ctrl-C leaves them for `{sync}`" if sync else "")
        return worker.wait_closed(deadline)

    def _release_when_done(self) -> None:
        """Release the run's lock once the log thread has stopped and every worker is done
        (called by both, so whichever is last releases it; ``finish`` returns after it)."""
        if self.run_lock is not None and self._stopped.is_set() and all(w.done for w in self.workers):
            self.run_lock.release()

    def _report(self, complete: bool) -> DeliveryReport:
        pending = {w.name: w.behind() for w in self.workers}
        lost = {w.name: w.lost for w in self.workers}
        complete = (complete and not any(pending.values()) and not self.unlogged and not any(lost.values())
                    and not self.dropped)
        return DeliveryReport(complete, pending, self.layout.event_log if self._event_log else None, self.unlogged,
                              lost, self.dropped)

    # -- log thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            try:
                while len(items) < LOG_BATCH:
                    items.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            self._add_rows(-sum(_rows_beyond_one(item) for item in items if type(item) is Samples))
            if self._stuck:
                self._stuck = False
                log.warning("rldk_track: the log thread moves again; %d records were dropped meanwhile", self.dropped)
            self._took.set()
            records: list[Record] = []
            for item in items:
                if not isinstance(item, _Barrier):
                    records.append(item)
                    continue
                self._write(records)
                records = []
                if isinstance(item, _Stop):
                    self._stop(item)
                    return
                self._guard_log(self._event_log.sync if self._event_log else None)
                item.seq = self._next_seq - 1
                item.done.set()
            self._write(records)

    def _write(self, records: list[Record]) -> None:
        """Number, log and hand on ``records`` (then what observers add), never raising: a batch
        that fails is retried record by record, and a record that still fails is reported."""
        try:
            self._write_batch(records)
        except Exception:
            log.exception("rldk_track: writing a batch of %d records failed; retrying one by one", len(records))
            for record in records:
                try:
                    self._write_batch([record])
                except Exception as exc:
                    log.error("rldk_track: record not logged (%s: %s): %.300r", type(exc).__name__, exc, record)

    def _write_batch(self, records: list[Record]) -> None:
        self.observers.feed(self._hand_on(records), self._hand_on)

    def _hand_on(self, records: list[Record]) -> list[Record]:
        """Number ``records``, append them to the event log and submit them to every worker;
        returns them numbered (an artifact that could not be staged is left out)."""
        numbered = [r for r in map(self._number, records) if r is not None]
        if numbered and (self._event_log or self.workers):
            lines = encode_lines(numbered, self.layout.run_id)
            if self._event_log:
                self._guard_log(lambda: self._event_log.append_lines(lines), len(numbered))
            sizes = record_sizes(lines)
            for worker in self.workers:
                worker.submit(numbered, sizes)
        return numbered

    def _guard_log(self, call: Callable[[], None] | None, records: int = 0) -> None:
        """Run an event-log write; when the disk is full (or the log otherwise unwritable) the
        records still go to every tracker, held in bounded memory, and the user hears once when
        the log fails and once when it is written again; ``unlogged`` counts what it lacks."""
        if call is None:
            return
        try:
            call()
        except OSError as exc:
            self.unlogged += records
            if self._log_error is None:
                self._log_error = exc
                log.error(
                    "rldk_track: cannot write the event log %s (%s); records still go to the trackers "
                    "(held in memory, at most %.0f MB per tracker) but are not in the event log until it "
                    "can be written again", self.layout.event_log, exc, pending_limit() / 2**20,
                )
                for worker in self.workers:
                    worker.set_event_log_ok(False)
            return
        if self._log_error is not None and records:
            log.warning("rldk_track: the event log %s is written again; %d records are not in it",
                        self.layout.event_log, self.unlogged)
            self._log_error = None
            for worker in self.workers:
                worker.set_event_log_ok(True)

    def _number(self, record: Record) -> Record | None:
        if isinstance(record, Artifact):
            record = self._stage(record)
            if record is None:
                return None
        elif isinstance(record, Samples):
            record = self.samples.bound(record)
        record = dataclasses.replace(record, seq=self._next_seq, **_text_fields(record))
        self._next_seq += 1
        return record

    def _stage(self, artifact: Artifact) -> Artifact | None:
        try:
            return stage_artifact(artifact, self.layout.artifacts_dir)
        except OSError as exc:
            log.warning("rldk_track: artifact %r was not logged: %s", artifact.name, exc)
            return None

    def _stop(self, stop: _Stop) -> None:
        self._write(self.observers.finish())
        self._write([RunEnd(seq=-1, wall_time=time.time(), status=stop.status)])
        self._guard_log(self._event_log.close if self._event_log else None)
        self._final_seq = self._next_seq - 1
        for worker in self.workers:
            worker.request_close()
        self._stopped.set()
        self._release_when_done()
        stop.seq = self._final_seq
        stop.done.set()


def _text_fields(record: Record) -> dict[str, Any]:
    """The record's fields that hold a lone surrogate, escaped (see ``normalize.valid_text``)."""
    changed = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if isinstance(value, (str, Mapping, list, tuple)):
            text = valid_text(value)
            if text is not value:
                changed[f.name] = text
    return changed
