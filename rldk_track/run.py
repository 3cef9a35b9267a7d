"""The front door: ``rldk_track.init(...)`` returns a :class:`Run`.

A Run validates and normalizes what the training loop gives it, turns it into records and hands
them to the dispatcher. It does nothing slow: no file or network I/O and no waiting on a tracker,
so ``run.log`` costs microseconds whatever the trackers are doing. Bad input never raises out of
``log``: it is converted, or reported once and kept as a note in the event log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from rldk_track import backends as backend_registry
from rldk_track import eventlog, lifecycle
from rldk_track.backends.base import Backend, RunInfo
from rldk_track.eventlog import EventLogWriter, summarize
from rldk_track.dispatch import BackendWorker, DeliveryReport, Dispatcher, pending_limit
from rldk_track.distributed import rank_and_world_size
from rldk_track.layout import RunLayout, resolve_run_dir
from rldk_track.normalize import NotAScalar, metric_name, to_jsonable, to_scalar, valid_text
from rldk_track.observer import Observer
from rldk_track.records import (
    SEVERITIES,
    STATUSES,
    Alert,
    Artifact,
    Metrics,
    Params,
    Record,
    RunStart,
    Samples,
    Summary,
    Tags,
)
from rldk_track.redact import redact, redact_text
from rldk_track.resume import earlier_name, requeued_run_id
from rldk_track.runlock import RunLock
from rldk_track.samples import SampleLimits, copy_rows
from rldk_track.version import __version__

log = logging.getLogger("rldk_track")

BackendSpec = str | Sequence[str] | None



class Run:
    """One training run, recorded in every configured tracker.

    Create it with :func:`rldk_track.init`. Thread-safe: another thread may log while the
    training thread does; a background sampler that must not move the step axis logs with
    ``emit(Metrics(...))`` at ``run.step``. A Run on a non-zero rank (without ``per_rank``) is
    inactive: every method returns at once.
    """

    def __init__(
        self,
        info: RunInfo,
        backends: Sequence[str],
        dispatcher: Dispatcher | None,
        event_log: Path | None = None,
    ) -> None:
        self.id = info.run_id
        self.name = info.name
        self.project = info.project
        self.dir = info.dir
        self.rank = info.rank
        #: The trackers this run records into (the event log is not one of them: see ``event_log``).
        self.backends = list(backends)
        #: The local event log this run writes, None when it is off or on a non-logging rank.
        self.event_log = event_log
        self._dispatcher = dispatcher
        self._step = -1
        #: Timings of ``run.timer`` blocks that wait for the next ``log`` (its step is theirs).
        self._timings: dict[str, float] = {}
        self._reported: set[tuple[str, str]] = set()
        self._finished = dispatcher is None
        self._report: DeliveryReport | None = None
        self._lock = threading.Lock()
        self._step_lock = threading.Lock()
        #: What ``log_samples`` records (rows a record, characters a cell, every N steps).
        self.sample_limits = dispatcher.samples.limits if dispatcher is not None else SampleLimits()
        if dispatcher is not None:
            lifecycle.track(self)

    @property
    def active(self) -> bool:
        """False on a non-logging rank and after ``finish``."""
        return not self._finished

    @property
    def step(self) -> int:
        """The last step logged (-1 before the first)."""
        return self._step

    # -- logging ---------------------------------------------------------------------------
    def log(
        self,
        metrics: Mapping[str, Any],
        step: int | None = None,
        *,
        rng: Mapping[str, Any] | None = None,
        data_slice: Mapping[str, Any] | None = None,
        model_info: Mapping[str, Any] | None = None,
        notes: Iterable[str] = (),
    ) -> None:
        """Record scalar ``metrics`` at ``step`` (default: the last step + 1).

        Values may be floats, ints, bools, numpy scalars or one-element tensors; NaN/Inf are kept
        (and noted). ``None`` (no value) and anything else are left out, noted on the record and
        reported once per key.
        """
        if self._finished:
            self._report_after_finish(Metrics.kind)
            return
        wall_time = time.time()
        step = self._resolve_step(step)
        values: dict[str, float] = {}
        if self._timings:
            values.update(self._take_timings())
        problems: list[str] | None = None
        for key, value in metrics.items():
            if type(key) is not str:
                key = metric_name(key)
            if value is None:
                problems = problems or []
                problems.append(f"dropped {key!r}: None (no value)")
                self._report_once("value", key, f"rldk_track: metric {key!r} is None (no value); it is not logged")
                continue
            if type(value) is not float:
                try:
                    value = to_scalar(value)
                except NotAScalar as exc:
                    problems = problems or []
                    problems.append(f"dropped {key!r}: {exc}")
                    self._report_once("value", key, f"rldk_track: metric {key!r} {exc}; it is not logged")
                    continue
            if value - value != 0.0:  # NaN or +-Inf, without a function call
                problems = problems or []
                problems.append(f"non-finite {key!r}: {value}")
                self._report_once("nonfinite", key, f"rldk_track: metric {key!r} is {value} at step {step} (kept)")
            values[key] = value
        if problems or notes:
            notes = (*notes, *(problems or ()))
        self._submit(Metrics(-1, wall_time, step, values, rng, data_slice, model_info, tuple(notes)))

    def _resolve_step(self, step: Any) -> int:
        with self._step_lock:
            return self._next_step(step)

    def _next_step(self, step: Any) -> int:
        if step is None:
            self._step += 1
            return self._step
        if type(step) is not int or not MIN_STEP <= step <= MAX_STEP:
            given, step = step, _as_step(step)
            if step is None:
                self._report_once("step", "type", f"rldk_track: step {given!r} is not an integer within "
                                  f"+-2**63 (what trackers store); using {self._step + 1}")
                self._step += 1
                return self._step
        if step < self._step:
            self._report_once(
                "step", "backwards",
                f"rldk_track: step went backwards ({self._step} -> {step}); recorded as given "
                "(W&B keeps it on the global_step axis)",
            )
        self._step = step
        return step

    def log_samples(self, rows: Any, step: int | None = None, *, name: str = "samples") -> None:
        """Record rows of samples (prompts, completions, rewards...) at ``step`` (default: the
        last step logged): a list of row dicts, a dict of columns or a pandas DataFrame.

        Only a shallow copy is made here; the log thread bounds the rows (``init(samples=...)``,
        :class:`~rldk_track.samples.SampleLimits`) and makes every cell JSON-safe. Steps not
        divisible by ``sample_limits.every`` are skipped. Bad input is reported once, never raised.
        """
        if self._finished:
            self._report_after_finish(Samples.kind)
            return
        if step is not None:
            given, step = step, _as_step(step)  # the one step rule of log/alert (an int within +-2**63)
            if step is None:
                self._report_once("samples", "step", f"rldk_track: samples step {given!r} is not an integer "
                                  "within +-2**63; not recorded")
                return
        else:
            step = max(self._step, 0)
        if not self.sample_limits.wants(step):
            return
        try:
            raw = copy_rows(rows)
        except TypeError as exc:
            self._report_once("samples", "type", f"rldk_track: {exc}; these samples are not recorded")
            return
        self._submit(Samples(-1, time.time(), step, (), (), str(name), raw=raw))

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record configuration (nested mappings, dataclasses, TrainingArguments...).
        Secret-looking values are redacted before they leave this call."""
        self._submit(Params(-1, time.time(), redact(to_jsonable(_require_mapping(params, "params")))))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set string labels on the run (values are converted with ``str``)."""
        clean = {metric_name(k): v if isinstance(v, str) else str(to_jsonable(v)) for k, v in _require_mapping(tags, "tags").items()}
        self._submit(Tags(-1, time.time(), redact(clean)))

    def log_summary(self, values: Mapping[str, Any]) -> None:
        """Record end-of-run values that are not a step series (``train_runtime``, ...)."""
        self._submit(Summary(-1, time.time(), redact(to_jsonable(_require_mapping(values, "summary")))))

    def log_artifact(self, path_or_bytes: str | os.PathLike[str] | bytes, name: str | None = None) -> None:
        """Attach a file, a directory or bytes to the run as ``name`` (a relative path such as
        ``rldk/alerts.jsonl``). The file is copied off the training thread, so it may change later."""
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            if not name:
                raise ValueError("log_artifact(bytes) needs name=, e.g. name='report.json'")
            self._submit(Artifact(-1, time.time(), _artifact_name(name), data=bytes(path_or_bytes)))
            return
        path = os.fspath(path_or_bytes)
        self._submit(Artifact(-1, time.time(), _artifact_name(name or os.path.basename(path.rstrip("/\\"))), path=os.path.abspath(path)))

    def alert(
        self,
        rule: str,
        message: str,
        severity: str = "warning",
        step: int | None = None,
        metric: str | None = None,
        value: float | None = None,
        threshold: float | None = None,
        action: str | None = None,
    ) -> None:
        """Raise an alert: shown as tags/summary/text in each tracker and kept in the alert log."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
        at = _as_step(step)  # None, NaN or out of range: the current step
        self._submit(
            Alert(-1, time.time(), self._step if at is None else at, str(rule), severity, redact_text(str(message)),
                  metric, _optional_float(value), _optional_float(threshold), action)
        )

    def add_observer(self, observer: Observer) -> None:
        """Show every later record to ``observer`` on the log thread (see ``rldk_track.observer``)."""
        if self._dispatcher is not None:
            self._dispatcher.add_observer(observer)

    def emit(self, record: Record) -> None:
        """Log a prebuilt record (integrations and analyzers use this); ``seq`` is assigned later."""
        self._submit(record)

    @contextlib.contextmanager
    def timer(self, stage: str, step: int | None = None) -> Iterator[None]:
        """Time a stage of the loop as ``perf/<stage>_s``.

        The timing belongs to the step the next ``run.log`` records (the loop times its stages,
        then logs the step), so it travels with that call; a stage timed twice before it adds
        up. With ``step=`` it is logged at once at that step instead. Timings still waiting
        when the run finishes are logged at the last step.
        """
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            key = f"perf/{stage}_s"
            if step is not None:
                self.log({key: elapsed}, step=step)
            else:
                with self._step_lock:
                    self._timings[key] = self._timings.get(key, 0.0) + elapsed

    def _take_timings(self) -> dict[str, float]:
        with self._step_lock:
            timings, self._timings = self._timings, {}
        return timings

    def _submit(self, record: Record) -> None:
        """Hand ``record`` to the dispatcher; after ``finish`` report it (once per kind) instead.
        An inactive run (other rank, forked child) drops it silently."""
        dispatcher = self._dispatcher
        if dispatcher is None:
            return
        if self._finished:
            self._report_after_finish(record.kind)
            return
        dispatcher.submit(record)

    def _report_after_finish(self, kind: str) -> None:
        if self._dispatcher is not None:
            self._report_once("finished", kind, f"rldk_track: run {self.id} is finished; {kind} logged after finish() is not recorded")

    # -- ending ----------------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> DeliveryReport:
        """Block until everything logged so far is in the event log (fsynced) and every tracker,
        or ``timeout`` seconds pass. The report says what is still pending."""
        if self._dispatcher is None:
            return DeliveryReport(True, {}, None)
        if self._report is not None:
            return self._report
        return self._dispatcher.flush(timeout)

    def finish(self, status: str = "success", timeout: float = 60.0) -> DeliveryReport:
        """End the run with ``status`` (success, failed or killed), waiting at most ``timeout``
        seconds for the trackers. Records not delivered by then stay in the event log and are
        delivered by ``rldk-track sync``. Calling it again returns the first report."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        # Bounded wait: a SIGTERM handler may call finish while this thread is inside it.
        if not self._lock.acquire(timeout=timeout):
            return DeliveryReport(False, {}, None)
        try:
            if self._report is not None or self._dispatcher is None:
                return self._report or DeliveryReport(True, {}, None)
            if self._timings:  # timed after the last log: they belong to the last step
                self._submit(Metrics(-1, time.time(), max(self._step, 0), self._take_timings()))
            self._finished = True
            self._report = self._dispatcher.close(status, timeout)
        finally:
            self._lock.release()
        lifecycle.untrack(self)
        if not self._report.complete:
            log.warning("rldk_track: run %s finished (%s) with records pending: %s", self.id, status, self._report.describe())
        return self._report

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        self.finish(lifecycle.status_for(exc_type, exc))

    def detach(self) -> None:
        """Make this copy of the run record nothing from now on, without ending it: every method
        returns at once and nothing is logged, flushed or finished (no ``run_end``). For a
        process that holds a copy of a run it does not own: a forked child (done for you), or a
        process standing in for one that died, whose run ``rldk-track sync`` is to end.
        Takes no lock (a forked child may have copied one held by a thread it does not have).
        Gives up this process's hold on the run's lock file, so another process (or ``sync``)
        may record it."""
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None and dispatcher.run_lock is not None:
            dispatcher.run_lock.close()
        self._finished = True
        lifecycle.forget(self)

    def _report_once(self, kind: str, key: str, message: str) -> None:
        if (kind, key) not in self._reported:
            self._reported.add((kind, key))
            log.warning(message)

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, backends={self.backends})"


def _require_mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        value = to_jsonable(value)
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping (or a dataclass/object with to_dict()), not {type(value).__name__}")
    return value


#: The steps every tracker can store (SQL stores keep them as signed 64-bit integers).
MIN_STEP, MAX_STEP = -(2**63), 2**63 - 1


def _as_step(value: Any) -> int | None:
    """``value`` as a step within the range trackers store, or None (NaN, 1e20, not a number)."""
    if value is None:
        return None
    try:
        step = value if type(value) is int else int(to_scalar(value))
    except (NotAScalar, ValueError, OverflowError):
        return None
    return step if MIN_STEP <= step <= MAX_STEP else None


def _optional_float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return to_scalar(value)
    except NotAScalar:
        return None


def _artifact_name(name: str) -> str:
    parts = [p for p in redact_text(str(name)).replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if not parts:
        raise ValueError(f"artifact name {name!r} is empty")
    return "/".join(parts)


# -- init ------------------------------------------------------------------------------------
def parse_backends(spec: BackendSpec) -> list[str]:
    """``"mlflow,tensorboard"`` / ``["mlflow", "tensorboard"]`` / None (``RLDK_TRACK_BACKENDS``,
    else ``jsonl``) as a list of distinct names (``jsonl``, the event log, among them if given)."""
    if spec is None:
        spec = os.environ.get("RLDK_TRACK_BACKENDS") or eventlog.NAME
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"backend names are strings, not {type(name).__name__}")
        name = name.strip().lower()
        if name and name not in out:
            out.append(name)
    if not out:
        raise ValueError("no backend given; use e.g. backend='jsonl' or backend=['mlflow', 'tensorboard']")
    return out


def resolve_backends(spec: BackendSpec) -> dict[str, type[Backend]]:
    """The tracker backend classes ``spec`` names (``jsonl``, the always-on event log, needs none
    and is left out). A misspelled name or a missing extra fails here, so integrations call it
    when they are set up, not at the first log after the model has loaded."""
    return {n: backend_registry.resolve(n) for n in parse_backends(spec) if n != eventlog.NAME}


def init(
    backend: BackendSpec = None,
    *,
    project: str = "rlhf",
    run_name: str | None = None,
    config: Mapping[str, Any] | Any = None,
    tags: Mapping[str, Any] | None = None,
    dir: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    mlflow: Mapping[str, Any] | None = None,
    wandb: Mapping[str, Any] | None = None,
    tensorboard: Mapping[str, Any] | None = None,
    trackio: Mapping[str, Any] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    per_rank: bool = False,
    analyzers: str | Mapping[str, Any] | Sequence[Any] | None = None,
    observers: Sequence[Observer] = (),
    notify: str | Sequence[str] | Any = None,
    samples: SampleLimits | None = None,
) -> Run:
    """Start a run that records into ``backend`` (one name or several).

    The local event log (``<dir>/events/<run_id>.jsonl``, ``Run.event_log``) is always written
    first unless ``RLDK_DISABLE_JSONL=1``; ``backend="jsonl"`` (the default) asks for it alone.
    Per-backend options go in ``mlflow=``, ``wandb=``, ``tensorboard=``, ``trackio=`` or
    ``options={"name": {...}}`` for third-party backends. Passing the
    ``run_id`` of an earlier run resumes it (same tracker runs, numbering continues); so do
    ``RLDK_RUN_ID`` and a job restarted by SLURM or torchrun (see :mod:`rldk_track.resume`).
    Only global rank 0 records unless ``per_rank=True`` (then other ranks write their own event
    log, tagged with their rank, and send nothing to trackers).
    ``analyzers="default"`` (or a list of analyzer names/objects) watches the metric stream off the
    training thread and logs their alerts; ``observers`` adds raw observers (see ``rldk_track.observer``).
    ``notify=["webhook", "wandb"]`` (or a :class:`rldk_track.notify.NotifySettings`; default
    ``RLDK_NOTIFY``) sends critical alert episodes and an end-of-run digest to a person, off the
    training thread (see :mod:`rldk_track.notify`).
    ``RLDK_TRACK_MODE=disabled`` (like ``WANDB_MODE=disabled``) turns all of it off: the Run is
    inactive, nothing is written or sent (the backend names are still checked).
    ``samples`` bounds what ``run.log_samples`` records (default :class:`~rldk_track.samples.SampleLimits`).
    One process records a run at a time: while another holds the run (the same ``run_id`` in the
    same ``dir``), ``init`` raises :class:`~rldk_track.runlock.RunLocked` naming its pid and host.
    """
    backend_classes = resolve_backends(backend)
    disabled = tracking_disabled()
    per_backend = {**(options or {}), **{k: v for k, v in (("mlflow", mlflow), ("wandb", wandb), ("tensorboard", tensorboard), ("trackio", trackio)) if v}}
    unknown = set(per_backend) - set(backend_classes)
    if unknown:
        log.warning("rldk_track: options given for backends not in use: %s", ", ".join(sorted(unknown)))

    rank, world_size = rank_and_world_size()
    project = valid_text(project)
    run_dir = resolve_run_dir(dir)
    run_id = run_id or os.environ.get("RLDK_RUN_ID") or requeued_run_id(run_dir, project, run_name) or uuid.uuid4().hex[:12]
    # A resumed run keeps its name (TensorBoard's folder and the trackers' display name).
    name = valid_text(run_name or earlier_name(RunLayout(run_dir, run_id).event_log) or f"{time.strftime('%Y%m%d-%H%M%S')}-{run_id[:6]}")
    info = RunInfo(run_id, name, project, run_dir, time.time(), rank, world_size)
    if disabled:
        log.info("rldk_track: RLDK_TRACK_MODE=disabled: run %s records nothing", name)
        return Run(info, [], None)
    if rank != 0:
        if not per_rank:
            return Run(info, [], None)
        backend_classes = {}
    layout = RunLayout(run_dir, run_id, f".rank{rank}" if rank else "")

    # Everything that can fail on a bad argument comes before any file is opened.
    backend_instances = {n: cls(info, per_backend.get(n)) for n, cls in backend_classes.items()}
    if analyzers:
        from rldk_track.analyzers import build_observers

        observers = [*build_observers(analyzers), *observers]
    use_event_log = eventlog.enabled()
    pending_bytes = pending_limit()  # RLDK_MAX_PENDING_MB: a bad value fails here, before any file
    if not use_event_log and not backend_instances:
        raise ValueError("RLDK_DISABLE_JSONL=1 turns the event log off, and no other backend is configured")
    if rank == 0:  # only the rank that records to trackers tells a person
        from rldk_track.notify import build_notifier

        notifier = build_notifier(notify, run_name=name, run_id=run_id, backends=backend_instances, run_dir=run_dir)
        if notifier is not None:
            observers = [*observers, notifier]

    event_log: EventLogWriter | None = None
    run_lock: RunLock | None = None
    next_seq = 0
    if use_event_log:
        run_lock = RunLock.acquire(layout)  # one writer per run: a second process fails here
        try:
            next_seq = _next_seq(layout.event_log)
            event_log = EventLogWriter(layout.event_log, run_id)
        except BaseException:
            run_lock.release()
            raise
    workers = [BackendWorker(b, layout, has_event_log=event_log is not None, max_pending_bytes=pending_bytes)
               for b in backend_instances.values()]
    for worker in workers:  # a resumed run: deliver what the trackers missed first
        worker.catch_up_to(next_seq - 1)
    dispatcher = Dispatcher(layout, event_log, workers, observers, next_seq, sample_limits=samples, run_lock=run_lock)
    run = Run(info, list(backend_classes), dispatcher, layout.event_log if event_log else None)
    run.emit(
        RunStart(
            -1, info.start_time, run_id, name, project,
            redact(to_jsonable({n: per_backend.get(n, {}) for n in backend_classes})),
            rank, world_size, socket.gethostname(), os.getpid(), __version__,
        )
    )
    if config is not None:
        run.log_params(config)
    if tags:
        run.set_tags(tags)
    return run


MODES = ("enabled", "disabled")


def tracking_disabled() -> bool:
    """True when ``RLDK_TRACK_MODE=disabled``: every run is inactive (the global off switch).
    Any other value than the :data:`MODES` fails fast, so a typo does not record by surprise."""
    mode = os.environ.get("RLDK_TRACK_MODE", "").strip().lower() or "enabled"
    if mode not in MODES:
        raise ValueError(f"RLDK_TRACK_MODE={mode!r}: use 'disabled' (record nothing) or 'enabled' (the default)")
    return mode == "disabled"


def _next_seq(event_log: Path) -> int:
    """Where numbering continues when a run is resumed into an existing event log."""
    return summarize(event_log).last_seq + 1 if event_log.exists() else 0
