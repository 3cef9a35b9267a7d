"""The checkpoint monitor: checkpoint health of each save, analysed off the training thread and
logged through the run.

The analysis itself is pure (``rldk_track.analyzers.checkpoint``); this module is the producer
around it: a worker thread, a bounded queue of saved checkpoints, hard-link pins that outlive the
trainer's checkpoint rotation (``checkpoint_pins``), the drift reference (the last checkpoint
without NaN/Inf), and the records and alerts it emits into the run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rldk_track.analyzers.checkpoint import CheckpointReport, HealthThresholds, analyze
from rldk_track.analyzers.checkpoint_alerts import RULE_UNREADABLE, CheckpointAlerts
from rldk_track.analyzers.checkpoint_files import DEFAULT_CHUNK_ELEMENTS, CheckpointFormatError, find_weight_files
from rldk_track.layout import RunLayout
from rldk_track.producers.checkpoint_pins import Pin, remove_stale_pins
from rldk_track.producers.thread_priority import lower_thread_priority

if TYPE_CHECKING:
    from rldk_track.run import Run

log = logging.getLogger("rldk_track")

__all__ = ["KEEP_REPORTS", "CheckpointMonitor"]


@dataclass
class _Job:
    step: int
    pin: Pin


#: Reports a CheckpointMonitor keeps in memory (the oldest are dropped).
KEEP_REPORTS = 8


class CheckpointMonitor:
    """Analyzes each saved checkpoint on its own thread and logs the result to ``run``.

    ``submit(path, step)`` returns at once: it only hard-links the weight files into ``pin_dir``
    (default ``<run dir>/pins``), so that a trainer rotating its checkpoints (``save_total_limit``)
    cannot delete them before they are read. Links need the same file system; elsewhere the files
    are read in place (give a ``pin_dir`` on the checkpoints' file system to keep the protection).
    One analysis runs at a time and at most ``max_pending`` wait (past that the oldest waiting one
    is skipped, with a warning). The last checkpoint without NaN/Inf is the drift reference.
    ``close(timeout)`` waits for the pending analyses; integrations call it before finishing the run.
    """

    def __init__(
        self,
        run: "Run",
        *,
        thresholds: HealthThresholds = HealthThresholds(),
        max_pending: int = 2,
        compare_with_previous: bool = True,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
        pin_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.run = run
        self.pin_dir = Path(pin_dir) if pin_dir is not None else RunLayout(Path(run.dir), run.id).pins_dir
        self.thresholds = thresholds
        self.max_pending = max(1, max_pending)
        self.compare_with_previous = compare_with_previous
        self.chunk_elements = chunk_elements
        #: the latest reports by step (a few: each holds per-tensor stats, and the full record of
        #: every checkpoint is in the run's artifacts already)
        self.reports: dict[int, CheckpointReport] = {}
        self._alerts = CheckpointAlerts(thresholds)
        self._queue: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._reference: tuple[int, Pin] | None = None
        self._failed_once = False

    def submit(self, path: str | os.PathLike[str], step: int) -> bool:
        """Queue the checkpoint at ``path`` (saved at ``step``); False when it is not queued."""
        if self._closed or not self.run.active:
            return False
        try:
            pin = Pin.create(find_weight_files(path), step, self.pin_dir)
        except (CheckpointFormatError, OSError, ValueError) as exc:
            self._unreadable(step, exc)
            return False
        with self._cv:
            if len(self._queue) >= self.max_pending:
                skipped = self._queue.popleft()
                skipped.pin.release()
                log.warning("rldk_track: checkpoint health is behind; skipping the checkpoint of step %d", skipped.step)
            self._queue.append(_Job(int(step), pin))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="rldk-checkpoint-health", daemon=True)
                self._thread.start()
            self._cv.notify_all()
        return True

    def close(self, timeout: float | None = 300.0) -> bool:
        """Stop taking checkpoints and wait up to ``timeout`` seconds for the queued analyses;
        True when all finished (a late one is logged only if the run is still open)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            return not thread.is_alive()
        return True

    # -- worker thread -------------------------------------------------------------------
    def _work(self) -> None:
        lower_thread_priority()  # under CPU contention the training loop goes first
        try:  # once per monitor, here rather than a folder scan in every submit()
            remove_stale_pins(self.pin_dir)
        except Exception as exc:  # housekeeping must not stop the analyses
            log.debug("rldk_track: could not clear stale checkpoint pins in %s: %s", self.pin_dir, exc)
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:
                    break
                job = self._queue.popleft()
            self._analyze(job)
        if self._reference is not None:
            self._reference[1].release()
            self._reference = None

    def _analyze(self, job: _Job) -> None:
        reference = self._reference if self.compare_with_previous else None
        try:
            report = analyze(job.pin.weights, reference[1].weights if reference else None,
                             thresholds=self.thresholds, chunk_elements=self.chunk_elements,
                             previous_step=reference[0] if reference else None)
        except Exception as exc:  # a checkpoint we cannot read is reported, never raised
            job.pin.release()
            self._unreadable(job.step, exc)
            return
        self.reports[job.step] = report
        while len(self.reports) > KEEP_REPORTS:
            del self.reports[next(iter(self.reports))]
        for record in [*report.to_records(job.step), *self._alerts.update(report, job.step)]:
            self.run.emit(record)
        if report.healthy:
            if reference is not None:
                reference[1].release()
            self._reference = (job.step, job.pin)
        else:
            job.pin.release()

    def _unreadable(self, step: int, exc: BaseException) -> None:
        if not self._failed_once:
            self._failed_once = True
            log.warning("rldk_track: checkpoint health could not read the checkpoint of step %d: %s", step, exc)
        self.run.alert(RULE_UNREADABLE, f"checkpoint at step {step} could not be analyzed: {exc}",
                       severity="warning", step=step, action="check that the weights were written completely")
