"""``RLDKCallback(samples=True)`` on a real GRPO run (tiny local model, CPU): every logging step's
prompts, completions, rewards and advantages reach the event log, MLflow, TensorBoard and W&B
offline, and each tracker's reader returns the same rows, without ``report_to`` or
``log_completions``."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

import trl  # noqa: E402
from datasets import Dataset  # noqa: E402

from rldk_track.integrations.trl import RLDKCallback  # noqa: E402
from rldk_track.readers import load_runs  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def length_reward(completions: list[str], **_: Any) -> list[float]:
    return [len(c) / 50 for c in completions]


def constant_reward(completions: list[str], **_: Any) -> list[float]:
    return [0.5] * len(completions)


@pytest.fixture(scope="module")
def sampled_run(tiny_lm_path: Path, tiny_lm_prompts: list[str], mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("grpo_samples")
    project = f"trl-samples-{uuid.uuid4().hex[:8]}"
    callback = RLDKCallback(backend=["mlflow", "tensorboard", "wandb"], project=project, dir=tmp / "runs",
                            analyzers=None, checkpoint_health=False, system_metrics=False, samples=True,
                            mlflow={"tracking_uri": mlflow_server.uri})
    trainer = trl.GRPOTrainer(
        model=str(tiny_lm_path), reward_funcs=[length_reward, constant_reward],
        train_dataset=Dataset.from_dict({"prompt": tiny_lm_prompts[:16]}),
        args=trl.GRPOConfig(str(tmp / "out"), num_generations=4, max_completion_length=8, beta=0.04, logging_steps=1,
                            report_to=[], bf16=False, use_cpu=True, disable_tqdm=True, per_device_train_batch_size=4,
                            seed=0, save_strategy="no", max_steps=3),
        callbacks=[callback],
    )
    trainer.train()
    sources = {
        "jsonl": str(tmp / "runs"),
        "mlflow": f"mlflow://{project}",
        "tensorboard": f"tensorboard://{tmp / 'runs' / 'tensorboard'}",
        "wandb": str(tmp / "runs" / "wandb"),
    }
    return tmp, {kind: load_runs(source, tracking_uri=mlflow_server.uri).samples for kind, source in sources.items()}


def test_each_logging_step_records_the_generation_batch(sampled_run):
    _, read = sampled_run
    samples = read["jsonl"]
    assert sorted(samples["step"].unique()) == [1, 2, 3]
    assert (samples.groupby("step").size() == 4).all()  # per_device_train_batch_size completions a step
    assert {"prompt", "completion", "reward", "reward/length_reward", "reward/constant_reward", "advantage"} <= set(samples.columns)
    assert samples["reward/length_reward"].tolist() == pytest.approx([len(c) / 50 for c in samples["completion"]])
    assert samples["reward"].tolist() == pytest.approx([len(c) / 50 + 0.5 for c in samples["completion"]])


def test_trl_wrote_no_completions_file_without_log_completions(sampled_run):
    tmp, _ = sampled_run
    assert not (tmp / "out" / "completions").exists()


@pytest.mark.parametrize("kind", ["mlflow", "tensorboard", "wandb"])
def test_every_tracker_reads_back_the_same_completions(sampled_run, kind):
    _, read = sampled_run
    columns = ["step", "name", "row", "prompt", "completion", "reward", "advantage"]
    expected, got = read["jsonl"][columns], read[kind][columns]
    assert got[["step", "name", "row", "prompt", "completion"]].equals(expected[["step", "name", "row", "prompt", "completion"]])
    assert got["reward"].astype(float).tolist() == pytest.approx(expected["reward"].astype(float).tolist())
    assert got["advantage"].astype(float).tolist() == pytest.approx(expected["advantage"].astype(float).tolist())
