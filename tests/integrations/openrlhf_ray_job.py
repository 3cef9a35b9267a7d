"""The driver of a small Ray job, run by test_openrlhf_ray.py under the launcher
(``python -m rldk_track.integrations.openrlhf ... -- python openrlhf_ray_job.py CKPT MODE``).

Like ``openrlhf.cli.train_ppo_ray``, it expects Ray to be initialised already (the launcher did,
with the setup hook), creates the PPO controller actor, which imports OpenRLHF and calls its real
``save_logs_and_checkpoints``, and drops the actor handle at the end. MODE ``fail`` raises in the
driver after the steps, as a crashing training script would.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import ray  # noqa: E402

from rldk_testsupport.openrlhf_minimal import ppo_trainer_actor_class  # noqa: E402


def main(ckpt_path: str, mode: str) -> None:
    assert ray.is_initialized(), "the launcher initialises Ray before the driver runs"
    trainer = ppo_trainer_actor_class().remote(ckpt_path)
    print("ACTOR_PID", ray.get(trainer.save_logs.remote([1, 2, 3]), timeout=240), flush=True)
    print("PATCHED", ray.get(trainer.method_is_patched.remote(), timeout=60), flush=True)
    if mode == "fail":
        raise RuntimeError("the driver failed after step 3")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
