"""System metrics: GPU and host resources sampled on their own thread and logged through the
run, plus a memory verdict (judged by ``rldk_track.analyzers.memory``).

```python
sampler = SystemSampler(interval_s=10)
run = rldk_track.init(..., observers=[sampler])    # optional: lets it see run.timer() stages
sampler.start(run)
with sampler.stage("rollout"): ...                 # or `with run.timer("rollout"):`
text = sampler.stop()                              # memory recommendation (also logged)
```

Every ``interval_s`` the sampler logs, at the run's current step, ``system/gpu<k>/util_pct``,
``mem_used_gb``, ``mem_pct``, ``power_w`` and ``temp_c`` for each visible GPU (NVML through
``nvidia-ml-py``; CUDA_VISIBLE_DEVICES is respected, ``k`` is the CUDA index), and
``system/cpu_pct``, ``system/mem_used_gb``, ``system/mem_pct``, ``system/proc_rss_gb``,
``system/proc_cpu_pct`` (psutil). Without a GPU or driver it is silently CPU-only; nothing it does
raises into the caller. All NVML/psutil calls happen on the sampler thread; ``stage()`` on the
training thread only sets a name and wakes the sampler.

Peak memory per stage: memory is polled every ``poll_s`` (0.5 s) and each sample is credited to
the stages that were running at that moment, either explicit ``sampler.stage(name)`` blocks (a
stage's start asks for a sample, and a stage that no sample fell into gets the first one taken
after it started) or ``run.timer(name)`` blocks, seen through their
``perf/<name>_s`` metric when the sampler is one of the run's observers. A spike shorter than
``poll_s`` can be missed, and NVML reports what the CUDA caching allocator holds (reserved, not
allocated), so the peaks are the device's view, which is the one that decides out-of-memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from rldk_track.analyzers.memory import GB, Device, Peak, memory_recommendation, memory_summary
from rldk_track.producers.thread_priority import lower_thread_priority
from rldk_track.records import Metrics, Record

if TYPE_CHECKING:
    from rldk_track.run import Run

log = logging.getLogger("rldk_track")

__all__ = ["SystemSampler"]


class SystemSampler:
    """Samples GPU (NVML) and host (psutil) resources on a daemon thread and logs them to a run.

    Also an observer (``init(observers=[sampler])``): it then sees ``run.timer()`` stages, and
    if the run finishes before ``stop()`` it stops itself and logs its summary then.
    """

    def __init__(
        self,
        run: "Run | None" = None,
        *,
        interval_s: float = 10.0,
        poll_s: float = 0.5,
        history_s: float = 3600.0,
        gpu: bool = True,
    ) -> None:
        if interval_s <= 0 or poll_s <= 0:
            raise ValueError("interval_s and poll_s must be positive")
        self.run = run
        self.interval_s = interval_s
        self.poll_s = min(poll_s, interval_s)
        self._use_gpu = gpu
        self._history: deque[tuple[float, tuple[float, ...], float]] = deque(maxlen=max(16, int(history_s / self.poll_s)))
        self._intervals: deque[tuple[str, float, float]] = deque(maxlen=10_000)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml: _Nvml | None = None
        self._host: _Host | None = None
        self.overall = Peak()
        self.stages: dict[str, Peak] = {}
        self._result: tuple[str, list[Record]] | None = None
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, run: "Run | None" = None) -> "SystemSampler":
        """Start sampling into ``run`` (or the run given to the constructor)."""
        self.run = run or self.run
        if self.run is None:
            raise ValueError("SystemSampler needs a run: SystemSampler(run) or sampler.start(run)")
        if self._thread is None and self.run.active:
            self._thread = threading.Thread(target=self._loop, name="rldk-system", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> str:
        """Stop sampling, log the memory summary (and an alert when it recommends a change) and
        return the recommendation text. Calling it again returns the same text."""
        text, records = self._conclude(timeout)
        if records and self.run is not None:
            for record in records:
                self.run.emit(record)
        return text

    def _conclude(self, timeout: float) -> tuple[str, list[Record]]:
        with self._lock:
            if self._result is not None:
                return self._result[0], []
            self._stop.set()
            self._wake.set()
            if self._thread is not None:
                self._thread.join(timeout)
            if self._thread is None or not self._thread.is_alive():  # else it still owns the history
                self._drain_intervals()
            devices = self._nvml.devices if self._nvml else []
            ram_total = self._host.ram_total if self._host else 0.0
            advice = memory_recommendation(devices, self.overall, self.stages, ram_total)
            records: list[Record] = []
            if self._thread is not None:  # it sampled: log what it saw
                step = max(self.run.step, 0) if self.run is not None else 0
                records = memory_summary(devices, self.overall, self.stages, advice, step)
            self._result = (advice.text, records)
            if self._nvml is not None:
                self._nvml.close()
            return advice.text, records

    @property
    def sampling(self) -> bool:
        """True between ``start()`` (on an active run) and ``stop()``."""
        return self._thread is not None and not self._stop.is_set()

    def __enter__(self) -> "SystemSampler":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- stages --------------------------------------------------------------------------
    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Credit the memory used inside this block to stage ``name``."""
        if not self.sampling:
            yield
            return
        start = time.time()
        self._wake.set()  # a sample as the stage starts, so even a short stage gets one
        try:
            yield
        finally:
            self._intervals.append((name, start, time.time()))

    # -- observer protocol (run.timer stages) ---------------------------------------------
    def observe(self, records: Iterable[Record]) -> list[Record]:
        if not self.sampling:
            return []
        for record in records:
            if isinstance(record, Metrics):
                for key, value in record.values.items():
                    if key.startswith("perf/") and key.endswith("_s") and value == value and value >= 0:
                        self._intervals.append((key[5:-2], record.wall_time - value, record.wall_time))
        return []

    def finish(self) -> list[Record]:
        """At ``run.finish``: stop (if still running) and hand the summary to the run."""
        return self._conclude(timeout=2.0)[1]

    # -- sampler thread ------------------------------------------------------------------
    def _loop(self) -> None:
        lower_thread_priority()
        try:
            self._host = _Host.open()
            self._nvml = _Nvml.open(os.environ.get("CUDA_VISIBLE_DEVICES")) if self._use_gpu else None
        except Exception as exc:  # never let a probe failure escape the thread
            log.warning("rldk_track: system metrics are off: %s", exc)
            return
        if self._host is None and self._nvml is None:
            log.warning("rldk_track: system metrics are off: install psutil (rldk-track[analysis]) or nvidia-ml-py")
            return
        next_log = time.monotonic()
        while True:  # at least one sample, even when stop() came before this thread ran
            try:
                self._poll()
                if time.monotonic() >= next_log:
                    next_log = time.monotonic() + self.interval_s
                    self._log_sample()
                self._drain_intervals()
            except Exception as exc:  # a flaky driver call must not kill sampling for good
                log.debug("rldk_track: system sample failed: %s", exc)
            if self._stop.is_set():
                break
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _poll(self) -> None:
        gpu = self._nvml.memory_used() if self._nvml else ()
        rss = self._host.rss() if self._host else 0.0
        now = time.time()
        self._history.append((now, gpu, rss))
        self.overall.add(gpu, rss)

    def _drain_intervals(self) -> None:
        """Credit each finished stage with the samples taken while it ran; a stage no sample fell
        into gets the first one taken after it started (the one its start asked for, which the
        low-priority sampler thread may only have taken once the stage was over)."""
        while self._intervals:
            name, start, end = self._intervals.popleft()
            peak = self.stages.setdefault(name, Peak())
            first_after_start = None
            credited = False
            for sample in reversed(self._history):
                if sample[0] < start:
                    break
                first_after_start = sample
                if sample[0] <= end:
                    peak.add(*sample[1:])
                    credited = True
            if not credited and first_after_start is not None:
                peak.add(*first_after_start[1:])

    def _log_sample(self) -> None:
        run = self.run
        if run is None or not run.active:
            return
        values: dict[str, float] = {}
        if self._nvml is not None:
            values.update(self._nvml.sample())
        if self._host is not None:
            values.update(self._host.sample())
        if values:
            run.emit(Metrics(-1, time.time(), max(run.step, 0), values))

class _Host:
    """Process and system CPU/memory through psutil."""

    def __init__(self, psutil: Any) -> None:
        self._psutil = psutil
        self._process = psutil.Process()
        self.ram_total = float(psutil.virtual_memory().total)
        psutil.cpu_percent(interval=None)  # the first reading of each is meaningless: prime them
        self._process.cpu_percent(interval=None)

    @classmethod
    def open(cls) -> "_Host | None":
        try:
            import psutil
        except ImportError:
            return None
        return cls(psutil)

    def rss(self) -> float:
        return float(self._process.memory_info().rss)

    def sample(self) -> dict[str, float]:
        memory = self._psutil.virtual_memory()
        return {
            "system/cpu_pct": float(self._psutil.cpu_percent(interval=None)),
            "system/mem_used_gb": (memory.total - memory.available) / GB,
            "system/mem_pct": float(memory.percent),
            "system/proc_rss_gb": self.rss() / GB,
            "system/proc_cpu_pct": float(self._process.cpu_percent(interval=None)),
        }


class _Nvml:
    """The visible GPUs through NVML; a metric a device does not support is dropped for it."""

    def __init__(self, nvml: Any, handles: list[tuple[str, Any]]) -> None:
        self._nvml = nvml
        self._handles = handles
        self.devices = [Device(name, float(nvml.nvmlDeviceGetMemoryInfo(h).total)) for name, h in handles]
        self._unsupported: set[tuple[str, str]] = set()

    @classmethod
    def open(cls, visible: str | None) -> "_Nvml | None":
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # no driver, no library, no GPU: CPU-only, silently
            log.debug("rldk_track: no NVML (%s); GPU metrics are off", exc)
            return None
        try:
            handles = _visible_handles(pynvml, visible)
            if not handles:
                pynvml.nvmlShutdown()
                return None
            return cls(pynvml, handles)
        except Exception as exc:
            log.debug("rldk_track: NVML device query failed (%s); GPU metrics are off", exc)
            pynvml.nvmlShutdown()
            return None

    def memory_used(self) -> tuple[float, ...]:
        return tuple(float(self._nvml.nvmlDeviceGetMemoryInfo(h).used) for _, h in self._handles)

    def sample(self) -> dict[str, float]:
        nvml = self._nvml
        out: dict[str, float] = {}
        for device, (name, handle) in zip(self.devices, self._handles):
            readers = {
                "util_pct": lambda h: float(nvml.nvmlDeviceGetUtilizationRates(h).gpu),
                "mem_used_gb": lambda h: nvml.nvmlDeviceGetMemoryInfo(h).used / GB,
                "power_w": lambda h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
                "temp_c": lambda h: float(nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)),
            }
            for metric, read in readers.items():
                if (name, metric) in self._unsupported:
                    continue
                try:
                    out[f"system/{name}/{metric}"] = read(handle)
                except nvml.NVMLError:
                    self._unsupported.add((name, metric))
            used = out.get(f"system/{name}/mem_used_gb")
            if used is not None and device.total:
                out[f"system/{name}/mem_pct"] = 100.0 * used * GB / device.total
        return out

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:
            pass


def _visible_handles(nvml: Any, visible: str | None) -> list[tuple[str, Any]]:
    """``(gpu<k>, handle)`` for the devices CUDA would show, ``k`` being the CUDA index."""
    count = nvml.nvmlDeviceGetCount()
    if visible is None:
        return [(f"gpu{i}", nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
    handles = []
    for k, entry in enumerate(e.strip() for e in visible.split(",")):
        if not entry:
            continue
        if entry.lstrip("-").isdigit():
            index = int(entry)
            if index < 0 or index >= count:
                break  # CUDA stops at the first invalid entry
            handles.append((f"gpu{k}", nvml.nvmlDeviceGetHandleByIndex(index)))
        else:
            try:
                handles.append((f"gpu{k}", nvml.nvmlDeviceGetHandleByUUID(entry)))
            except nvml.NVMLError:
                break  # MIG or short UUIDs: not resolved here
    return handles
