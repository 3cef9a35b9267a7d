"""A TRL run resumed from its checkpoint is the same run in every tracker: a real GRPO run of the
tiny in-code GPT-2 saves at step 10, dies at step 15, and ``train(resume_from_checkpoint=...)``
with a fresh callback (no run id given) trains on to step 20."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from rldk_track.integrations.trl import RLDKCallback  # noqa: E402
from rldk_track.readers import load_runs  # noqa: E402

pytestmark = pytest.mark.timeout(600)

BACKENDS = ["mlflow", "wandb", "tensorboard"]


class Preempted(RuntimeError):
    pass


class PreemptAt(TrainerCallback):
    """Dies at ``step`` after that step was logged, as a preempted job does."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise Preempted(f"preempted at step {self.step}")


def length_reward(completions: list[str], **_: Any) -> list[float]:
    return [len(c) / 50 for c in completions]


def grpo(model: Path, out: Path, prompts: list[str], callbacks: list) -> trl.GRPOTrainer:
    args = trl.GRPOConfig(str(out), num_generations=2, max_completion_length=4, per_device_train_batch_size=2,
                          max_steps=20, save_strategy="steps", save_steps=10, logging_steps=1, report_to=[],
                          bf16=False, use_cpu=True, disable_tqdm=True, seed=0)
    return trl.GRPOTrainer(model=str(model), reward_funcs=length_reward, args=args, callbacks=callbacks,
                           train_dataset=Dataset.from_dict({"prompt": prompts[:40]}))


def callback(runs: Path) -> RLDKCallback:
    return RLDKCallback(backend=BACKENDS, dir=runs, analyzers=None, checkpoint_health=False, system_metrics=False,
                        mlflow={"tracking_uri": f"sqlite:///{runs / 'mlflow.db'}"})


def test_a_grpo_run_resumed_from_its_checkpoint_is_one_run_with_steps_1_to_20_everywhere(tiny_lm_path, tiny_lm_prompts,
                                                                                           tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    first = callback(runs)
    with pytest.raises(Preempted):
        grpo(tiny_lm_path, out, tiny_lm_prompts, [first, PreemptAt(15)]).train()
    first.finish("killed")  # what the SIGTERM of a preemption does; the process is gone after it
    assert (out / "checkpoint-10").is_dir() and not (out / "checkpoint-15").exists()

    second = callback(runs)  # a new process: nothing carries over but the checkpoint
    grpo(tiny_lm_path, out, tiny_lm_prompts, [second]).train(resume_from_checkpoint=str(out / "checkpoint-10"))
    assert second.run.id == first.run.id

    for source in (runs, runs / "mlflow.db", runs / "wandb", runs / "tensorboard"):
        read = load_runs(source, progress=False)
        assert len(read) == 1, f"{source}: {read.run_names}"
        assert read.runs.iloc[0]["status"] == "success", source
        reward = read.frame[read.frame["metric"] == "reward/mean"]
        assert reward["step"].tolist() == list(range(1, 21)), f"{source}: {reward['step'].tolist()}"
        assert not read.frame.duplicated(["run", "metric", "step"]).any(), source

    # TensorBoard's own view (what its UI draws) shows the re-trained steps once too
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (log_dir,) = [p for p in (runs / "tensorboard").iterdir() if p.is_dir()]
    view = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    view.Reload()
    assert [event.step for event in view.Scalars("reward/mean")] == list(range(1, 21))
