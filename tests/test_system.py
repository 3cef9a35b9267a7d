"""The system sampler on this (CPU-only) machine, through a real run read back from the event
log; the memory recommendation as a pure function; NVML absent or broken never raises."""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest

import rldk_track
from rldk_track.analyzers.memory import GB, Device, Peak, memory_recommendation
from rldk_track.eventlog import read_records
from rldk_track.producers.system_sampler import SystemSampler, _visible_handles
from rldk_track.producers.thread_priority import lower_thread_priority
from rldk_track.records import Metrics, Summary

HOST_METRICS = {"system/cpu_pct", "system/mem_used_gb", "system/mem_pct", "system/proc_rss_gb", "system/proc_cpu_pct"}


def events(run) -> list:
    return [r for _, r in read_records(run.dir / "events" / f"{run.id}.jsonl")]


def system_metrics(run) -> list[Metrics]:
    return [r for r in events(run) if isinstance(r, Metrics) and any(k.startswith("system/") for k in r.values)]


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class SystemSamples:
    """An observer counting the system-metric records the run has delivered."""

    def __init__(self) -> None:
        self.count = 0

    def observe(self, records) -> list:
        self.count += sum(1 for r in records if isinstance(r, Metrics) and any(k.startswith("system/") for k in r.values))
        return []


def test_sampler_logs_cpu_and_memory_metrics_at_the_runs_current_step(tmp_path):
    seen = SystemSamples()
    run = rldk_track.init(dir=tmp_path, observers=[seen])
    run.log({"loss": 1.0}, step=7)
    sampler = SystemSampler(run, interval_s=0.05).start()
    wait_for(lambda: seen.count >= 3, timeout=60)
    sampler.stop()
    run.finish()

    samples = system_metrics(run)
    assert len(samples) >= 3
    assert all(r.step == 7 for r in samples)
    assert HOST_METRICS <= set(samples[-1].values)
    assert all(k.startswith("system/gpu") for k in set(samples[-1].values) - HOST_METRICS)
    assert 0.01 < samples[-1].values["system/proc_rss_gb"] < 64
    assert 0 <= samples[-1].values["system/cpu_pct"] <= 100


def test_a_run_shorter_than_the_first_sample_still_gets_one(tmp_path):
    run = rldk_track.init(dir=tmp_path)
    run.log({"loss": 1.0}, step=3)
    SystemSampler(run, interval_s=60).start().stop()
    run.finish()
    assert [r.step for r in system_metrics(run)] == [3]


def test_sampling_never_moves_the_runs_step(tmp_path):
    run = rldk_track.init(dir=tmp_path)
    sampler = SystemSampler(run, interval_s=0.01, poll_s=0.01).start()
    for step in range(200):
        run.log({"loss": 1.0})
        assert run.step == step
    sampler.stop()
    run.finish()


def test_sampler_without_nvml_installed_is_cpu_only_and_silent(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    run = rldk_track.init(dir=tmp_path)
    sampler = SystemSampler(run, interval_s=0.05).start()
    time.sleep(0.2)
    sampler.stop()
    run.finish()
    assert set(system_metrics(run)[-1].values) == HOST_METRICS
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


def test_sampler_survives_an_nvml_that_fails_at_every_call(tmp_path, monkeypatch):
    """A driver that is installed but broken (no device, version mismatch)."""

    class NVMLError(Exception):
        pass

    def fail(*args, **kwargs):
        raise NVMLError("driver/library version mismatch")

    broken = types.SimpleNamespace(NVMLError=NVMLError, nvmlInit=lambda: None, nvmlShutdown=lambda: None,
                                   nvmlDeviceGetCount=fail, nvmlDeviceGetHandleByIndex=fail)
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    run = rldk_track.init(dir=tmp_path)
    sampler = SystemSampler(run, interval_s=0.05).start()
    time.sleep(0.2)
    text = sampler.stop()
    run.finish()
    assert set(system_metrics(run)[-1].values) == HOST_METRICS
    assert text.startswith("No GPU seen (CPU only)")


def test_memory_used_inside_a_stage_is_credited_to_it(tmp_path):
    run = rldk_track.init(dir=tmp_path)
    sampler = SystemSampler(run, interval_s=10, poll_s=0.02).start()
    with sampler.stage("rollout"):
        buffer = np.ones(40_000_000 // 8)  # 40 MB, touched
        polled = sampler.overall.samples
        wait_for(lambda: sampler.overall.samples >= polled + 2, timeout=60)  # a poll began after the allocation
    del buffer
    with sampler.stage("update"):
        time.sleep(0.3)
    sampler.stop()
    run.finish()
    assert sampler.stages["rollout"].rss > sampler.stages["update"].rss + 30e6
    assert sampler.stages["update"].samples >= 1


def test_a_stage_shorter_than_the_poll_interval_still_gets_a_sample(tmp_path):
    run = rldk_track.init(dir=tmp_path)
    sampler = SystemSampler(run, interval_s=10, poll_s=5).start()
    time.sleep(0.1)  # the first poll has happened; the next is 5 s away
    with sampler.stage("reward"):
        time.sleep(0.05)
    sampler.stop()
    run.finish()
    assert sampler.stages["reward"].samples >= 1


def test_run_timer_stages_are_seen_when_the_sampler_is_an_observer(tmp_path):
    sampler = SystemSampler(interval_s=10, poll_s=0.02)
    run = rldk_track.init(dir=tmp_path, observers=[sampler])
    sampler.start(run)
    with run.timer("rollout"):
        time.sleep(0.15)
    run.log({"reward/mean": 1.0}, step=0)  # the timing travels with the step's log
    run.flush()
    wait_for(lambda: "rollout" in sampler.stages)
    text = sampler.stop()
    run.finish()
    assert sampler.stages["rollout"].samples >= 1
    assert "peak by stage: rollout" in text


def test_stop_logs_the_memory_summary_and_returns_its_text(tmp_path):
    run = rldk_track.init(dir=tmp_path)
    sampler = SystemSampler(run, interval_s=0.05, poll_s=0.02).start()
    with sampler.stage("update"):
        time.sleep(0.1)
    text = sampler.stop()
    assert sampler.stop() == text  # idempotent
    run.finish()
    summary = next(r for r in events(run) if isinstance(r, Summary))
    assert summary.values["system/memory_recommendation"] == text
    assert summary.values["system/peak_proc_rss_gb"] > 0
    assert summary.values["system/stage/update/peak_proc_rss_gb"] > 0


def test_finishing_the_run_stops_an_observing_sampler_and_keeps_its_summary(tmp_path):
    sampler = SystemSampler(interval_s=0.05)
    run = rldk_track.init(dir=tmp_path, observers=[sampler])
    sampler.start(run)
    time.sleep(0.1)
    run.finish()
    assert not any(t.name == "rldk-system" and t.is_alive() for t in threading.enumerate())
    kinds = [r.kind for r in events(run)]
    assert kinds.index("summary") < kinds.index("run_end")


def test_stages_and_stop_make_no_system_call_on_the_training_thread(tmp_path, monkeypatch):
    """``stage()`` only records a name and wakes the sampler: every psutil call is on its thread."""
    import psutil

    callers: set[str] = set()

    def watched(owner, name):
        real = getattr(owner, name)

        def call(*args, **kwargs):
            callers.add(threading.current_thread().name)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, call)

    for owner, name in ((psutil, "virtual_memory"), (psutil, "cpu_percent"), (psutil.Process, "memory_info"),
                        (psutil.Process, "cpu_percent")):
        watched(owner, name)
    run = rldk_track.init(dir=tmp_path)
    sampler = SystemSampler(run, interval_s=0.01, poll_s=0.01).start()
    wait_for(lambda: sampler.overall.samples >= 1, timeout=60)  # sampling is under way
    for _ in range(200):
        with sampler.stage("step"):
            pass
    polled = sampler.overall.samples
    wait_for(lambda: sampler.overall.samples >= polled + 2, timeout=60)
    sampler.stop()
    run.finish()
    assert callers == {"rldk-system"}


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_background_threads_yield_the_cpu_to_training(tmp_path):
    import os

    seen = {}
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())  # 19 already under `nice -n 19 pytest`

    def background() -> None:
        lower_thread_priority()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    thread = threading.Thread(target=background)
    thread.start()
    thread.join()
    assert seen["nice"] == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # the caller's thread is untouched


def test_sampler_on_an_inactive_run_does_nothing(tmp_path):
    run = rldk_track.init(dir=tmp_path)
    run.finish()
    sampler = SystemSampler(run).start()
    with sampler.stage("rollout"):  # e.g. on a non-logging rank: nothing is kept
        pass
    assert not sampler.sampling and not sampler.stages
    assert sampler.stop() == "No memory samples were taken."


# -- the recommendation (pure) ----------------------------------------------------------------
def peak(gpu_gb: list[float], rss_gb: float = 1.0) -> Peak:
    p = Peak()
    p.add([g * GB for g in gpu_gb], rss_gb * GB)
    return p


def test_near_oom_recommends_halving_the_batch_and_doubling_accumulation():
    advice = memory_recommendation([Device("gpu0", 80 * GB)], peak([78.0]), {"update": peak([78.0]), "rollout": peak([40.0])})
    assert advice.severity == "warning"
    assert advice.finding.startswith("gpu0 peaked at 98% of 80.0 GB during 'update'")
    assert "halve the per-device batch size and double gradient_accumulation_steps" in advice.action
    assert advice.metric == "system/gpu0/mem_pct" and advice.value == pytest.approx(97.5)


def test_plenty_of_headroom_recommends_a_larger_batch_by_a_conservative_factor():
    advice = memory_recommendation([Device("gpu0", 80 * GB)], peak([20.0]), {"rollout": peak([20.0])})
    assert advice.severity == "info"
    assert "grow about 3x" in advice.action  # 0.9 * 80 / 20 = 3.6 -> 3
    assert "divide gradient_accumulation_steps by the same factor" in advice.action


def test_well_used_memory_needs_no_change():
    advice = memory_recommendation([Device("gpu0", 80 * GB)], peak([60.0]), {})
    assert advice.severity is None and "no change needed" in advice.text


def test_the_fullest_gpu_decides():
    devices = [Device("gpu0", 80 * GB), Device("gpu1", 80 * GB)]
    advice = memory_recommendation(devices, peak([20.0, 79.0]), {})
    assert advice.severity == "warning" and advice.finding.startswith("gpu1 peaked at 99%")


def test_cpu_only_reports_peak_process_memory():
    advice = memory_recommendation([], peak([], rss_gb=3.0), {"rollout": peak([], rss_gb=3.0)}, ram_total=32 * GB)
    assert advice.severity is None
    assert advice.text == "No GPU seen (CPU only): peak process memory 3.00 GB of 32.0 GB RAM (peak by stage: rollout 3.00 GB)."


# -- which GPUs (our parsing of CUDA_VISIBLE_DEVICES) --------------------------------------------
class FakeNvml:
    class NVMLError(Exception):
        pass

    def __init__(self, count: int = 4) -> None:
        self.count = count

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"physical{index}"

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        if uuid.startswith("GPU-"):
            return uuid
        raise self.NVMLError("not found")


@pytest.mark.parametrize("visible, expected", [
    (None, [("gpu0", "physical0"), ("gpu1", "physical1"), ("gpu2", "physical2"), ("gpu3", "physical3")]),
    ("2,3", [("gpu0", "physical2"), ("gpu1", "physical3")]),
    ("", []),
    ("-1", []),
    ("1,7,2", [("gpu0", "physical1")]),  # CUDA stops at the first invalid entry
    ("GPU-abc,0", [("gpu0", "GPU-abc"), ("gpu1", "physical0")]),
    ("MIG-xyz", []),
])
def test_visible_devices_follow_cuda_numbering(visible, expected):
    assert _visible_handles(FakeNvml(), visible) == expected
