"""PPO logs inside a Ray actor, in another process: a patch applied in the driver does not reach it
(which is why the integration ships a Ray worker setup hook), and the launcher's setup hook does:
the actor that runs OpenRLHF's real ``BasePPOTrainer.save_logs_and_checkpoints`` records one run,
which ends when the driver lets go of the actor (failed when the driver failed).

One local Ray for the session (``ray_local``, num_cpus=1); the launcher attaches to it as a second
driver with its own job-level runtime_env, as ``--address`` does on a real cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from rldk_testsupport.openrlhf_minimal import ppo_trainer_actor_class
from rldk_testsupport.ray_local import WORKER_PYTHONPATH

from rldk_track.eventlog import read_records
from rldk_track.integrations import openrlhf as integration
from rldk_track.records import Metrics, RunEnd, RunStart

pytestmark = pytest.mark.timeout(400)

JOB = Path(__file__).with_name("openrlhf_ray_job.py")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _unpatched_afterwards(openrlhf_installed: None) -> Any:
    yield
    integration.uninstall()


def launch_job(ray_address: str, tmp_path: Path, run_id: str, mode: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "rldk_track.integrations.openrlhf",
        "--address", ray_address, "--dir", str(tmp_path / "runs"), "--run-id", run_id, "--no-analyzers",
        "--runtime-env-json", json.dumps({"env_vars": {"PYTHONPATH": WORKER_PYTHONPATH}}),
        "--", sys.executable, str(JOB), str(tmp_path / "ckpt"), mode,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=360, cwd=tmp_path)


def printed(out: str, label: str) -> str:
    return [line.split(None, 1)[1] for line in out.splitlines() if line.startswith(label + " ")][-1]


def test_a_patch_applied_in_the_driver_does_not_reach_the_ray_actor(ray_local: str, tmp_path: Path,
                                                                    openrlhf_trainers: dict[str, Any]) -> None:
    import ray

    BasePPOTrainer = openrlhf_trainers["openrlhf.trainer.ppo_trainer"].BasePPOTrainer
    assert integration.install(dir=tmp_path / "runs", run_id="driver-only", analyzers=None)
    assert integration.is_patched(BasePPOTrainer)  # in this process, the driver

    trainer = ppo_trainer_actor_class().remote(str(tmp_path / "ckpt"))
    try:
        assert ray.get(trainer.method_is_patched.remote(), timeout=240) is False
        ray.get(trainer.save_logs.remote([1, 2]), timeout=60)
    finally:
        ray.kill(trainer)
    assert not (tmp_path / "runs").exists()  # the actor's OpenRLHF logged, nothing was recorded


def test_the_launchers_setup_hook_patches_the_trainer_actor_which_records_one_run(ray_local: str, tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # the launcher starts in a checkout of this commit
    (tmp_path / ".git" / "HEAD").write_text(COMMIT + "\n")
    out = launch_job(ray_local, tmp_path, "ray-hook", "ok")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert printed(out.stdout, "PATCHED") == "True"

    logs = sorted(p.name for p in (tmp_path / "runs" / "events").glob("*.jsonl"))
    assert logs == ["ray-hook.jsonl"]
    recs = [r for _, r in read_records(tmp_path / "runs" / "events" / "ray-hook.jsonl")]
    [start] = [r for r in recs if isinstance(r, RunStart)]
    assert start.pid == int(printed(out.stdout, "ACTOR_PID"))  # recorded by the actor, not the driver
    kl = {r.step: r.values["kl/mean"] for r in recs if isinstance(r, Metrics) and "kl/mean" in r.values}
    assert kl == {1: 0.01, 2: 0.01, 3: 0.01}
    assert [r.status for r in recs if isinstance(r, RunEnd)] == ["success"]  # ended as the driver let go
    [params] = [r for r in recs if r.kind == "params"]
    assert params.values["git"] == {"commit": COMMIT}  # the launcher's checkout, wherever the actor runs
    assert params.values["versions"]["openrlhf"] == metadata.version("openrlhf")


def test_a_failing_driver_ends_the_actors_run_as_failed(ray_local: str, tmp_path: Path) -> None:
    out = launch_job(ray_local, tmp_path, "ray-fail", "fail")
    assert out.returncode == 1 and "the driver failed after step 3" in out.stderr

    recs = [r for _, r in read_records(tmp_path / "runs" / "events" / "ray-fail.jsonl")]
    assert sorted(r.step for r in recs if isinstance(r, Metrics)) == [1, 2, 3]
    assert [r.status for r in recs if isinstance(r, RunEnd)] == ["failed"]
