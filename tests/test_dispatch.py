"""Delivery guarantees of the dispatcher, shown with the controllable fake backend: order,
outage and catch-up, hanging trackers, refused records, bounded shutdown, crash recovery.
(Each real tracker repeats the outage/crash cases in tests/backends.)"""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import pytest

import rldk_track
from rldk_track.eventlog import read_cursor, read_records
from rldk_track.records import Metrics, Samples
from rldk_track.sync import sync


def logged_steps(store):
    return [r.step for r in store.records if isinstance(r, Metrics)]


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_every_record_reaches_the_tracker_once_in_order(tmp_path, fake_backend):
    run = rldk_track.init(backend="fake", dir=tmp_path)
    for step in range(1000):
        run.log({"reward": step * 0.1}, step=step)
    report = run.finish()
    store = fake_backend[run.id]
    assert report.complete and report.pending == {"fake": 0}
    assert logged_steps(store) == list(range(1000))
    assert store.status == "success"
    assert [r.seq for r in store.records] == sorted(r.seq for r in store.records)
    assert run.backends == ["fake"]


def test_a_tracker_that_is_down_loses_nothing_and_catches_up(tmp_path, fake_backend, caplog):
    run = rldk_track.init(backend="fake", dir=tmp_path, run_id="outage00001")
    store = fake_backend["outage00001"]
    for step in range(50):
        run.log({"x": step}, step=step)
    assert run.flush(10).complete
    store.down = True
    with caplog.at_level(logging.WARNING, "rldk_track"):
        for step in range(50, 150):
            run.log({"x": step}, step=step)
        assert not run.flush(0.5).complete
        store.down = False
        report = run.finish(timeout=10)
    assert report.complete
    assert logged_steps(store) == list(range(150))
    assert sum("could not deliver to" in m for m in caplog.messages) == 1
    assert sum("reachable again" in m for m in caplog.messages) == 1


def test_a_hanging_tracker_never_blocks_logging_and_finish_is_bounded(tmp_path, fake_backend):
    """The tracker hangs for the whole test (its gate stays closed until the end), so logging and
    ``finish`` can only return if they never wait for it; each runs on a thread joined with a
    generous timeout, so the test fails (rather than hangs) if one does wait."""
    import threading

    run = rldk_track.init(backend="fake", dir=tmp_path, run_id="hang0000001")
    store = fake_backend["hang0000001"]
    store.gate.clear()  # every write now hangs
    reports = []

    def log_then_finish():
        for step in range(2000):
            run.log({"x": step}, step=step)
        reports.append(run.finish(timeout=1.0))

    caller = threading.Thread(target=log_then_finish, daemon=True)
    caller.start()
    caller.join(120)
    assert not caller.is_alive(), "logging or finish waited for the hanging tracker"
    assert not store.gate.is_set() and store.records == []  # the tracker took nothing meanwhile
    (report,) = reports
    assert not report.complete and report.pending["fake"] > 0
    assert "rldk-track sync" in report.describe()
    lines = list(read_records(tmp_path / "events" / "hang0000001.jsonl"))
    assert sum(isinstance(r, Metrics) for _, r in lines) == 2000  # the event log has everything
    store.gate.set()
    assert wait_for(lambda: store.status == "success")
    assert logged_steps(store) == list(range(2000))


BOUND_MB = 0.1  # RLDK_MAX_PENDING_MB in these tests: ~130 one-metric records


def test_a_tracker_far_behind_holds_bounded_bytes_then_catches_up_from_the_event_log(
    tmp_path, fake_backend, monkeypatch, caplog
):
    monkeypatch.setenv("RLDK_MAX_PENDING_MB", str(BOUND_MB))
    run = rldk_track.init(backend="fake", dir=tmp_path, run_id="overflow001")
    store = fake_backend["overflow001"]
    store.gate.clear()  # the tracker hangs: every record is behind
    with caplog.at_level(logging.WARNING, "rldk_track"):
        for step in range(1000):
            wide = {f"m{i}": float(i) for i in range(40)} if step % 10 == 0 else {}  # sizes vary
            run.log({"x": step, **wide}, step=step)
            if step % 20 == 19:
                run.flush(0)  # its barrier hands the last 20 records to the worker as one batch
        run.flush(0.5)
    (worker,) = run._dispatcher.workers
    assert 0 < worker.peak_pending_bytes <= BOUND_MB * 2**20  # the queue's byte count never passed the bound
    assert worker.pending_bytes <= BOUND_MB * 2**20
    store.gate.set()
    assert run.finish(timeout=20).complete
    assert logged_steps(store) == list(range(1000))  # each record once, in order: nothing lost to the bound
    assert any("catch up from the event log" in m for m in caplog.messages)


def test_without_the_event_log_memory_is_bounded_and_loss_is_reported(tmp_path, fake_backend, monkeypatch, caplog):
    monkeypatch.setenv("RLDK_DISABLE_JSONL", "1")
    monkeypatch.setenv("RLDK_MAX_PENDING_MB", str(BOUND_MB))
    run = rldk_track.init(backend="fake", dir=tmp_path, run_id="nolog000001")
    store = fake_backend["nolog000001"]
    store.gate.clear()
    with caplog.at_level(logging.ERROR, "rldk_track"):
        for step in range(500):
            run.log({"x": step}, step=step)
        run.flush(0.5)
    (worker,) = run._dispatcher.workers
    assert worker.peak_pending_bytes <= BOUND_MB * 2**20
    store.gate.set()
    report = run.finish(timeout=10)
    assert worker.lost > 0 and report.lost == {"fake": worker.lost}
    steps = logged_steps(store)
    assert steps == sorted(set(steps)) and steps[-1] == 499  # the oldest dropped (and counted), the newest kept
    assert any("event log is off" in m for m in caplog.messages)
    assert not (tmp_path / "events").exists()
    assert run.backends == ["fake"]


class _GatedObserver:
    """Holds the log thread inside ``observe`` until ``gate`` is set (a hung disk write)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.gate = threading.Event()
        self.delay = delay

    def observe(self, records):
        if self.delay:
            time.sleep(self.delay)
        else:
            self.gate.wait(120)


def test_logging_faster_than_the_log_thread_waits_for_it_and_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("rldk_track.dispatch.MAX_QUEUED", 50)
    monkeypatch.setattr("rldk_track.dispatch.STUCK_AFTER_S", 120.0)
    run = rldk_track.init(dir=tmp_path, run_id="backpress01", observers=[_GatedObserver(delay=0.001)])
    for step in range(2000):
        run.log({"x": step}, step=step)
    report = run.finish(timeout=60)
    assert report.complete and report.dropped == 0
    assert [r.step for _, r in read_records(run.event_log) if isinstance(r, Metrics)] == list(range(2000))


def test_a_stuck_log_thread_bounds_the_queue_drops_and_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("rldk_track.dispatch.MAX_QUEUED", 50)
    monkeypatch.setattr("rldk_track.dispatch.STUCK_AFTER_S", 0.2)
    stuck = _GatedObserver()
    run = rldk_track.init(dir=tmp_path, run_id="stuck000001", observers=[stuck])
    with caplog.at_level(logging.WARNING, "rldk_track"):
        for step in range(300):
            run.log({"x": step}, step=step)
        assert run._dispatcher._queue.qsize() <= 50  # bounded while the log thread is stuck
        stuck.gate.set()
        report = run.finish(timeout=60)
    assert not report.complete and report.dropped > 0
    assert "dropped before they were logged" in report.describe()
    logged = [r.step for _, r in read_records(run.event_log) if isinstance(r, Metrics)]
    assert len(logged) == 300 - report.dropped and logged == sorted(logged)
    assert sum("has taken no record" in m for m in caplog.messages) == 1
    assert sum("the log thread moves again" in m for m in caplog.messages) == 1


def _hold_the_log_thread(run, gate: _GatedObserver) -> None:
    """Let the log thread take one record and stop inside its observer (held until ``gate``)."""
    run.log({"x": 0.0}, step=0)
    assert wait_for(lambda: run._dispatcher.queued() == 0, timeout=120)


def test_the_queue_bound_counts_a_sample_set_as_its_rows(tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.setattr("rldk_track.dispatch.STUCK_AFTER_S", 120.0)
    gate = _GatedObserver()
    run = rldk_track.init(dir=tmp_path, run_id="weighted001", observers=[gate])
    dispatcher = run._dispatcher
    _hold_the_log_thread(run, gate)
    run.log_samples([{"completion": "a" * 1000, "reward": 1.0}] * 64, step=1)
    assert dispatcher.queued() == 64
    run.log_samples({"completion": ["b"] * 10, "reward": [0.0] * 10}, step=2)  # a dict of columns
    run.log_samples(pd.DataFrame({"completion": ["c"] * 5}), step=3)
    run.log({"x": 1.0}, step=3)
    assert dispatcher.queued() == 64 + 10 + 5 + 1
    run.log_samples([], step=4)  # an empty set still takes a place
    assert dispatcher.queued() == 81
    gate.gate.set()
    report = run.finish(timeout=60)
    assert report.complete and report.dropped == 0 and dispatcher.queued() == 0
    sets = [r for _, r in read_records(run.event_log) if isinstance(r, Samples)]
    assert [len(r.rows) for r in sets] == [64, 10, 5, 0]


def test_sample_sets_reach_the_queue_bound_by_their_rows(tmp_path, monkeypatch):
    monkeypatch.setattr("rldk_track.dispatch.MAX_QUEUED", 100)
    monkeypatch.setattr("rldk_track.dispatch.STUCK_AFTER_S", 0.2)
    gate = _GatedObserver()
    run = rldk_track.init(dir=tmp_path, run_id="weighted002", observers=[gate])
    _hold_the_log_thread(run, gate)
    for step in range(1, 11):
        run.log_samples([{"completion": f"step {step}"}] * 64, step=step)
    # 64 < 100 lets the second set in; at 128 the third waits, the thread is stuck, the rest drop
    assert run._dispatcher.queued() == 128 and run._dispatcher._queue.qsize() == 2
    gate.gate.set()
    report = run.finish(timeout=60)
    assert report.dropped == 8
    assert [r.step for _, r in read_records(run.event_log) if isinstance(r, Samples)] == [1, 2]


def test_a_bad_memory_bound_fails_fast(tmp_path, fake_backend, monkeypatch):
    monkeypatch.setenv("RLDK_MAX_PENDING_MB", "lots")
    with pytest.raises(ValueError, match="RLDK_MAX_PENDING_MB"):
        rldk_track.init(backend="fake", dir=tmp_path, run_id="badbound001")
    monkeypatch.delenv("RLDK_MAX_PENDING_MB")
    rldk_track.init(backend="fake", dir=tmp_path, run_id="badbound001").finish()  # nothing was left locked


def test_refused_records_are_isolated_kept_and_reported_once(tmp_path, fake_backend, caplog):
    run = rldk_track.init(backend="fake", dir=tmp_path, run_id="reject00001")
    store = fake_backend["reject00001"]
    store.reject = lambda r: isinstance(r, Metrics) and r.values.get("bad") == 1.0
    with caplog.at_level(logging.WARNING, "rldk_track"):
        for step in range(40):
            run.log({"x": step, "bad": 1.0 if step in (7, 21) else 0.0}, step=step)
        assert run.finish(timeout=10).complete
    assert logged_steps(store) == [s for s in range(40) if s not in (7, 21)]
    refused = [json.loads(line) for line in (tmp_path / "events" / "reject00001.fake.rejected.jsonl").read_text().splitlines()]
    assert [r["record"]["step"] for r in refused] == [7, 21]
    assert sum("refused a record" in m for m in caplog.messages) == 1


def test_a_lingering_backend_gets_one_batch_and_a_flush_cuts_the_wait_short(tmp_path, fake_backend, monkeypatch):
    from rldk_testsupport.fake_backend import FakeBackend

    monkeypatch.setattr(FakeBackend, "linger_s", 3600.0)  # far longer than the flush may take
    run = rldk_track.init(backend="fake", dir=tmp_path, run_id="linger00001")
    store = fake_backend["linger00001"]
    for step in range(10):
        run.log({"x": step}, step=step)
        time.sleep(0.01)
    assert run.flush(60).complete  # only possible if the flush cut the hour-long linger short
    assert logged_steps(store) == list(range(10))
    assert store.write_calls <= 2  # the run_start and the ten steps travel together, not one by one
    run.finish()


def test_the_delivery_position_is_persisted(tmp_path, fake_backend):
    run = rldk_track.init(backend="fake", dir=tmp_path, run_id="cursor00001")
    for step in range(10):
        run.log({"x": step}, step=step)
    run.finish()
    cursor = read_cursor(tmp_path / "events" / "cursor00001.fake.cursor.json")
    last_seq = max(r.seq for _, r in read_records(tmp_path / "events" / "cursor00001.jsonl"))
    assert cursor["seq"] == last_seq
    assert cursor["state"]["fake_run"] == "cursor00001"


CHILD_THAT_DIES_WHILE_THE_TRACKER_HANGS = """
import os, sys
sys.path.insert(0, {support!r})
from rldk_testsupport.fake_backend import FakeBackend, STORES
from rldk_track import backends, init
backends.register("fake", FakeBackend)
run = init(backend="fake", dir={dir!r}, run_id="sync0000001")
for step in range(20):
    run.log({{"x": step}}, step=step)
assert run.flush(10).complete
STORES["sync0000001"].gate.clear()  # the tracker hangs...
for step in range(20, 60):
    run.log({{"x": step}}, step=step)
run.flush(0.5)
os._exit(0)  # ...and the process dies without finishing
"""


def test_sync_delivers_what_a_tracker_missed_and_a_second_sync_adds_nothing(tmp_path, fake_backend):
    import subprocess
    import sys
    from pathlib import Path

    support = str(Path(__file__).parent / "support")
    child = CHILD_THAT_DIES_WHILE_THE_TRACKER_HANGS.format(support=support, dir=str(tmp_path))
    subprocess.run([sys.executable, "-c", child], check=True, timeout=60)

    results = sync(tmp_path)
    fresh = fake_backend["sync0000001"]
    assert [(r.backend, r.complete) for r in results] == [("fake", True)]
    assert logged_steps(fresh) == list(range(20, 60))
    assert fresh.opens[-1]["fake_run"] == "sync0000001"  # resumed the same tracker run
    assert fresh.status == "killed"
    again = sync(tmp_path)
    assert again[0].delivered == 0 and logged_steps(fresh) == list(range(20, 60))


def test_sync_ends_a_run_whose_process_died_as_killed(tmp_path, fake_backend):
    events = tmp_path / "events"
    run = rldk_track.init(backend="fake", dir=tmp_path, run_id="dead0000001")
    fake_backend["dead0000001"].gate.clear()
    for step in range(5):
        run.log({"x": step}, step=step)
    run.flush(0.3)
    # Simulate a SIGKILL: the log has no run_end and the recorded pid is gone.
    lines = (events / "dead0000001.jsonl").read_text().splitlines()
    start = json.loads(lines[0])
    start["pid"] = 2**22 + 12345
    (events / "dead0000001.jsonl").write_text("\n".join([json.dumps(start), *lines[1:]]) + "\n")
    fake_backend["dead0000001"] = fresh = type(fake_backend["dead0000001"])()
    run.detach()  # this process stands for the dead one: it must not finish the run, and lets go of its lock
    results = sync(tmp_path)
    assert results[0].complete
    assert fresh.status == "killed"
    assert logged_steps(fresh) == list(range(5))
    assert [r for _, r in read_records(events / "dead0000001.jsonl")][-1].status == "killed"  # the log says so too


def test_sync_to_jsonl_has_nothing_to_deliver_but_still_ends_a_dead_run(tmp_path, fake_backend):
    run = rldk_track.init(dir=tmp_path, run_id="tojsonl0001")
    run.log({"x": 1}, step=0)
    run.flush(5)
    events = tmp_path / "events" / "tojsonl0001.jsonl"
    lines = events.read_text().splitlines()
    start = json.loads(lines[0])
    start["pid"] = 2**22 + 12345
    events.write_text("\n".join([json.dumps(start), *lines[1:]]) + "\n")
    run.detach()  # this process stands for the dead one
    results = sync(tmp_path, to=["jsonl"])
    assert [(r.backend, r.delivered, r.complete, r.skipped) for r in results] == [
        ("jsonl", 0, True, "the event log is the source")]
    assert [r.kind for _, r in read_records(events)] == ["run_start", "metrics", "run_end"]
    assert sync(tmp_path, to=["jsonl", "fake"])[1].backend == "fake"
    assert logged_steps(fake_backend["tojsonl0001"]) == [0]


def test_sync_from_start_replays_a_whole_log_to_a_new_destination(tmp_path, fake_backend):
    run = rldk_track.init(backend="fake", dir=tmp_path, run_id="fromstart01")
    for step in range(5):
        run.log({"x": step}, step=step)
    run.finish()
    assert sync(tmp_path)[0].delivered == 0
    fake_backend["fromstart01"] = fresh = type(fake_backend["fromstart01"])()
    results = sync(tmp_path, from_start=True)
    assert results[0].complete and logged_steps(fresh) == list(range(5)) and fresh.status == "success"


def test_sync_treats_an_unreaped_child_as_dead(tmp_path, fake_backend):
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and open(f"/proc/{child.pid}/stat").read().split(") ")[1][0] != "Z":
        time.sleep(0.05)
    run = rldk_track.init(backend="fake", dir=tmp_path, run_id="zombie00001")
    fake_backend["zombie00001"].gate.clear()
    run.log({"x": 1}, step=0)
    run.flush(0.3)
    events = tmp_path / "events" / "zombie00001.jsonl"
    lines = events.read_text().splitlines()
    start = json.loads(lines[0])
    start["pid"] = child.pid
    events.write_text("\n".join([json.dumps(start), *lines[1:]]) + "\n")
    run.detach()
    fake_backend["zombie00001"] = fresh = type(fake_backend["zombie00001"])()
    assert sync(tmp_path)[0].complete and fresh.status == "killed"
    child.wait()


def test_resuming_a_run_id_continues_the_log_and_the_tracker_run(tmp_path, fake_backend):
    first = rldk_track.init(backend="fake", dir=tmp_path, run_id="resume00001")
    first.log({"x": 1}, step=1)
    first.finish()
    second = rldk_track.init(backend="fake", dir=tmp_path, run_id="resume00001")
    second.log({"x": 2}, step=2)
    second.finish()
    seqs = [r.seq for _, r in read_records(tmp_path / "events" / "resume00001.jsonl")]
    assert seqs == list(range(len(seqs)))
    store = fake_backend["resume00001"]
    assert store.opens[0] is None and store.opens[1]["fake_run"] == "resume00001"


def test_observers_see_records_off_the_training_thread_and_may_add_records(tmp_path):
    import threading

    from rldk_track.records import Alert

    seen_threads = set()

    class KlWatcher:
        def observe(self, records):
            seen_threads.add(threading.current_thread().name)
            return [
                Alert(-1, r.wall_time, r.step, "kl_high", "warning", "kl above 1", "kl", r.values["kl"], 1.0)
                for r in records if isinstance(r, Metrics) and r.values.get("kl", 0) > 1
            ]

        def finish(self):
            return [Alert(-1, time.time(), 9, "summary", "info", "done")]

    run = rldk_track.init(dir=tmp_path, observers=[KlWatcher()])
    for step, kl in enumerate([0.1, 0.2, 3.0, 0.1]):
        run.log({"kl": kl}, step=step)
    run.finish()
    records = [r for _, r in read_records(tmp_path / "events" / f"{run.id}.jsonl")]
    alerts = [r for r in records if isinstance(r, Alert)]
    assert [(a.rule, a.step) for a in alerts] == [("kl_high", 2), ("summary", 9)]
    assert records[-1].kind == "run_end"
    assert seen_threads == {"rldk-log"}


def test_a_failing_observer_is_reported_once_and_logging_goes_on(tmp_path, caplog):
    class Broken:
        def observe(self, records):
            raise ZeroDivisionError("analyzer bug")

    run = rldk_track.init(dir=tmp_path, observers=[Broken()])
    with caplog.at_level(logging.ERROR, "rldk_track"):
        for step in range(10):
            run.log({"x": step}, step=step)
        assert run.finish().complete
    assert sum("analyzer bug" in m for m in caplog.messages) == 1
    assert len([1 for _, r in read_records(tmp_path / "events" / f"{run.id}.jsonl") if isinstance(r, Metrics)]) == 10


def test_only_rank_zero_records_unless_per_rank(tmp_path, monkeypatch, fake_backend):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    quiet = rldk_track.init(backend="fake", dir=tmp_path / "a", run_id="rank0000001")
    quiet.log({"x": 1})
    assert not quiet.active and quiet.finish().complete
    assert not (tmp_path / "a").exists()
    per_rank = rldk_track.init(backend="fake", dir=tmp_path / "b", run_id="rank0000002", per_rank=True)
    per_rank.log({"x": 1}, step=0)
    per_rank.finish()
    assert per_rank.backends == []  # other ranks never talk to trackers
    assert per_rank.event_log == tmp_path / "b" / "events" / "rank0000002.rank1.jsonl"
    records = [r for _, r in read_records(tmp_path / "b" / "events" / "rank0000002.rank1.jsonl")]
    assert records[0].rank == 1 and records[0].world_size == 2
    assert "rank0000002" not in fake_backend


def test_srun_tasks_without_rank_are_told_apart_by_slurm_procid(monkeypatch):
    """``srun`` sets no ``RANK``: without SLURM_PROCID every task was rank 0, and all but one met the run lock."""
    from rldk_track.distributed import rank_and_world_size

    for var in ("RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert rank_and_world_size() == (3, 4)
    monkeypatch.setenv("RANK", "1")  # a launcher inside the task (torchrun) knows better
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert rank_and_world_size() == (1, 8)


def test_a_forked_child_does_not_log(tmp_path):
    run = rldk_track.init(dir=tmp_path)
    run.log({"x": 1}, step=0)
    pid = os.fork()
    if pid == 0:  # child: logging must be a silent no-op, and exit must not hang
        run.log({"x": 2}, step=1)
        os._exit(0 if not run.active else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    run.finish()
    steps = [r.step for _, r in read_records(tmp_path / "events" / f"{run.id}.jsonl") if isinstance(r, Metrics)]
    assert steps == [0]


def test_interpreter_exit_finishes_the_run(tmp_path):
    import subprocess
    import sys

    script = (
        "import rldk_track\n"
        f"run = rldk_track.init(dir={str(tmp_path)!r}, run_id='atexit00001')\n"
        "run.log({'x': 1}, step=0)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    crashing = script.replace("atexit00001", "atexit00002") + "raise SystemExit('boom') if False else 1/0\n"
    subprocess.run([sys.executable, "-c", crashing], timeout=60, capture_output=True)
    ends = {rid: [r for _, r in read_records(tmp_path / "events" / f"{rid}.jsonl")][-1] for rid in ("atexit00001", "atexit00002")}
    assert ends["atexit00001"].status == "success"
    assert ends["atexit00002"].status == "failed"


@pytest.mark.parametrize(
    ("ending", "status"),
    [("raise KeyboardInterrupt", "killed"), ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", "killed")],
    ids=["ctrl-c", "sigterm"],
)
def test_an_interrupted_or_preempted_process_ends_its_run_as_killed(tmp_path, ending, status):
    import signal
    import subprocess
    import sys

    script = (
        "import rldk_track\n"
        f"run = rldk_track.init(dir={str(tmp_path)!r}, run_id='ended000001')\n"
        "run.log({'x': 1}, step=0)\n"
        f"{ending}\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True)
    if "SIGTERM" in ending:
        assert done.returncode == -signal.SIGTERM  # the signal still ends the process as it would have
    records = [r for _, r in read_records(tmp_path / "events" / "ended000001.jsonl")]
    assert records[-1].kind == "run_end" and records[-1].status == status
    assert [r.step for r in records if isinstance(r, Metrics)] == [0]


@pytest.mark.parametrize("threads", [4])
def test_concurrent_loggers_keep_every_record(tmp_path, threads):
    import threading

    run = rldk_track.init(dir=tmp_path)

    def work(t):
        for i in range(500):
            run.log({f"t{t}": i}, step=i)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    run.finish()
    records = [r for _, r in read_records(tmp_path / "events" / f"{run.id}.jsonl")]
    assert sum(isinstance(r, Metrics) for r in records) == threads * 500
    assert [r.seq for r in records] == list(range(len(records)))
