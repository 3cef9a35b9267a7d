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
from rldk_track.samples import SampleLimits  # noqa: E402

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


def test_sample_limits_bound_the_callbacks_sets_every_second_step(tiny_lm_path: Path, tiny_lm_prompts: list[str], tmp_path: Path):
    limits = SampleLimits(max_rows=3, max_cell_chars=5, every=2)
    callback = RLDKCallback(dir=tmp_path / "runs", analyzers=None, checkpoint_health=False, system_metrics=False,
                            samples=limits)
    trainer = trl.GRPOTrainer(
        model=str(tiny_lm_path), reward_funcs=[length_reward],
        train_dataset=Dataset.from_dict({"prompt": tiny_lm_prompts[:16]}),
        args=trl.GRPOConfig(str(tmp_path / "out"), num_generations=4, max_completion_length=8, logging_steps=1,
                            report_to=[], bf16=False, use_cpu=True, disable_tqdm=True, per_device_train_batch_size=4,
                            seed=0, save_strategy="no", max_steps=4),
        callbacks=[callback],
    )
    trainer.train()
    assert callback.run.sample_limits == limits
    read = load_runs(str(tmp_path / "runs"))
    samples = read.samples
    assert sorted(read.frame.loc[read.frame["metric"] == "reward/mean", "step"].unique()) == [1, 2, 3, 4]  # metrics every step
    assert sorted(samples["step"].unique()) == [2, 4]  # but only every 2nd step its samples
    assert (samples.groupby("step").size() == 3).all()  # 3 of the batch's 4 rows
    for text in samples["completion"]:
        assert len(text) <= 5 or text.endswith(" characters]")


def test_samples_takes_a_bool_or_sample_limits_and_says_so_otherwise():
    with pytest.raises(TypeError, match="True, False or a rldk_track.samples.SampleLimits"):
        RLDKCallback(samples="every 2")
    with pytest.raises(TypeError, match="True, False or a rldk_track.samples.SampleLimits"):
        RLDKCallback(samples=2)
    with pytest.raises(ValueError, match="SampleLimits.every must be a positive integer"):
        RLDKCallback(samples=SampleLimits(every=0))
    with pytest.raises(TypeError, match="fields of SampleLimits"):
        RLDKCallback(samples={"rows": 3})


def test_sample_limits_survive_the_checkpoints_callback_state():
    limits = SampleLimits(max_rows=16, every=10)
    saved = RLDKCallback(samples=limits).state()["args"]
    assert saved["samples"] == {"max_rows": 16, "max_cell_chars": 4000, "every": 10}
    assert RLDKCallback(**saved).samples == limits  # what transformers' restore_callback_states does
    assert RLDKCallback(**RLDKCallback(samples=True).state()["args"]).samples is True
