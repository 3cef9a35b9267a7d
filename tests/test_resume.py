"""A job restarted by its scheduler (SLURM requeue, torchrun restart) or given RLDK_RUN_ID
continues its run; a finished run is not continued by accident."""

from __future__ import annotations

import pytest

import rldk_track
from rldk_track.readers import load_runs
from rldk_track.resume import job_identity


@pytest.fixture(autouse=True)
def no_scheduler(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "TORCHELASTIC_RUN_ID", "RLDK_RUN_ID"):
        monkeypatch.delenv(name, raising=False)


def attempt(tmp_path, steps: range, status: str | None, **kwargs) -> rldk_track.Run:
    run = rldk_track.init(dir=tmp_path, project="rq", **kwargs)
    for step in steps:
        run.log({"reward/mean": float(step)}, step=step)
    if status:
        run.finish(status)
    else:
        run.flush()
        run.detach()  # the process dies here: no run_end
    return run


@pytest.mark.parametrize("env", [{"SLURM_JOB_ID": "4242"}, {"TORCHELASTIC_RUN_ID": "abc"},
                                 {"SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "9"}])
def test_a_requeued_job_continues_its_run(tmp_path, monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    first = attempt(tmp_path, range(0, 6), None, run_name="grpo")
    second = attempt(tmp_path, range(4, 10), "success", run_name="grpo")
    assert second.id == first.id and second.name == "grpo"
    runs = load_runs(tmp_path)
    assert len(runs) == 1 and runs.frame["step"].tolist() == list(range(10))


def test_a_requeued_job_without_a_run_name_keeps_the_first_attempts_name(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    first = attempt(tmp_path, range(3), "killed")
    second = attempt(tmp_path, range(3, 5), "success")
    assert (second.id, second.name) == (first.id, first.name)


def test_a_job_does_not_continue_a_run_that_succeeded_or_has_another_name(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    done = attempt(tmp_path, range(3), "success", run_name="a")
    assert attempt(tmp_path, range(3), "success", run_name="a").id != done.id
    assert attempt(tmp_path, range(3), "success", run_name="b").id != done.id


def test_rldk_run_id_continues_a_run(tmp_path, monkeypatch):
    monkeypatch.setenv("RLDK_RUN_ID", "explicit1234")
    attempt(tmp_path, range(3), None)
    assert attempt(tmp_path, range(3, 6), "success").id == "explicit1234"
    assert load_runs(tmp_path).frame["step"].tolist() == list(range(6))


def test_torchrun_without_a_rendezvous_id_is_no_job():
    assert job_identity({"TORCHELASTIC_RUN_ID": "none"}) is None
    assert job_identity({}) is None
