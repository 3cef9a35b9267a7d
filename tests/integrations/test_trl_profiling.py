"""TRL's profiling timings become ``perf/*`` metrics, and RewardWatch is a sample source: against
TRL's real ``ProfilingContext`` and a real GRPO run (tiny local model, CPU) whose reward functions
a ``RewardWatch(samples=True)`` wraps."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl.extras.profiling import ProfilingContext  # noqa: E402

import rldk_track  # noqa: E402
from rldk_track.eventlog import read_records  # noqa: E402
from rldk_track.integrations.reward_watch import REWARDS, RewardWatch  # noqa: E402
from rldk_track.integrations.trl import COMPLETIONS, RLDKCallback  # noqa: E402
from rldk_track.integrations.trl_profiling import ProfilingTimings  # noqa: E402
from rldk_track.records import Metrics, Samples  # noqa: E402
from rldk_track.samples import SampleLimits  # noqa: E402

pytestmark = pytest.mark.timeout(300)

TRLS_METHOD = ProfilingContext.__dict__["_log_metrics"]


def length_reward(completions: list[str], **_: Any) -> list[float]:
    return [len(c) / 50 for c in completions]


def constant_reward(completions: list[str], **_: Any) -> list[float]:
    return [0.5] * len(completions)


class Model:
    training = True


class GRPOTrainer:
    """Stands for a trainer in the routing tests: what ProfilingTimings reads of one."""

    reward_func_names = ["length_reward"]

    def __init__(self) -> None:
        self.model = Model()


class RLOOTrainer(GRPOTrainer):
    pass


def block_took(name: str, seconds: float) -> None:
    """TRL's own path for a finished block: ``__exit__`` -> ``_log_metrics(duration)``."""
    ProfilingContext(name=name, report_to=[], is_main_process=True, step=0)._log_metrics(seconds)


# -- TRL's ProfilingContext, routed -----------------------------------------------------------
def test_each_block_is_summed_per_optimizer_step_under_its_perf_name():
    timings = ProfilingTimings(trainer := GRPOTrainer(), step=0)
    assert timings.start()
    try:
        block_took("GRPOTrainer.transformers.generate", 0.5)
        block_took("GRPOTrainer.transformers.generate", 0.25)
        block_took("GRPOTrainer.length_reward", 0.125)
        block_took("GRPOTrainer._calculate_rewards", 0.2)
        block_took("GRPOTrainer.compute_loss", 0.1)
        block_took("VLLMGeneration.generate", 9.0)  # not a trainer's block
        assert timings.take(2) == {"perf/generate_s": 0.375, "perf/reward/length_reward_s": 0.0625,
                                   "perf/reward_s": 0.1, "perf/compute_loss_s": 0.05}
        assert timings.take(2) == {}  # no step since
        block_took("GRPOTrainer.transformers.generate", 0.5)
        assert timings.take(3) == {"perf/generate_s": 0.5}
        trainer.model.training = False  # evaluation
        block_took("GRPOTrainer.transformers.generate", 0.5)
        assert timings.take(4) == {}
    finally:
        timings.stop()


def test_blocks_go_to_the_trainer_of_their_class_and_the_last_stop_puts_trls_method_back():
    trainers = GRPOTrainer(), RLOOTrainer()
    grpo, rloo = (ProfilingTimings(trainer, 0) for trainer in trainers)
    assert grpo.start() and rloo.start()
    assert ProfilingContext.__dict__["_log_metrics"] is not TRLS_METHOD
    block_took("GRPOTrainer.sync_weights", 1.0)
    block_took("RLOOTrainer._prepare_inputs", 2.0)
    assert grpo.take(1) == {"perf/sync_weights_s": 1.0}
    assert rloo.take(1) == {"perf/prepare_inputs_s": 2.0}
    grpo.stop()
    assert ProfilingContext.__dict__["_log_metrics"] is not TRLS_METHOD  # RLOO still listens
    rloo.stop()
    assert ProfilingContext.__dict__["_log_metrics"] is TRLS_METHOD


def test_a_trainer_that_is_gone_is_not_counted_and_trls_logging_still_runs():
    timings = ProfilingTimings(GRPOTrainer(), 0)  # the trainer object is dropped at once
    assert timings.start()
    try:
        with ProfilingContext(name="GRPOTrainer.compute_loss", report_to=[], step=0):
            pass
        assert timings.take(1) == {}
    finally:
        timings.stop()


# -- a real GRPO run ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grpo_run(tiny_lm_path: Path, tiny_lm_prompts: list[str], tmp_path_factory: pytest.TempPathFactory):
    """Three GRPO steps, TRL's completions (``samples=True``) and a RewardWatch with samples on:
    the event log's records."""
    tmp = tmp_path_factory.mktemp("grpo_profiling")
    callback = RLDKCallback(backend="jsonl", dir=tmp / "runs", analyzers=None, checkpoint_health=False,
                            system_metrics=False, samples=True)
    trainer = trl.GRPOTrainer(
        model=str(tiny_lm_path), reward_funcs=RewardWatch(samples=True)([length_reward, constant_reward]),
        train_dataset=Dataset.from_dict({"prompt": tiny_lm_prompts[:16]}),
        args=trl.GRPOConfig(str(tmp / "out"), num_generations=4, max_completion_length=8, logging_steps=1,
                            report_to=[], bf16=False, use_cpu=True, disable_tqdm=True, per_device_train_batch_size=4,
                            seed=0, save_strategy="no", max_steps=3),
        callbacks=[callback],
    )
    trainer.train()
    run = callback.run
    return [r for _, r in read_records(run.dir / "events" / f"{run.id}.jsonl")]


def test_trls_profiling_timings_are_perf_metrics_at_each_logging_step(grpo_run):
    metrics = [r for r in grpo_run if isinstance(r, Metrics) and "loss/total" in r.values]
    assert [m.step for m in metrics] == [1, 2, 3]
    for m in metrics:
        for key in ("perf/generate_s", "perf/reward_s", "perf/prepare_inputs_s", "perf/logps_s",
                    "perf/compute_loss_s", "perf/reward/length_reward_s", "perf/reward/constant_reward_s"):
            assert math.isfinite(m.values[key]) and m.values[key] > 0, key
        assert m.values["perf/prepare_inputs_s"] >= m.values["perf/generate_s"]  # generation is inside it
        assert not any(k.startswith("profiling/") for k in m.values)
    assert ProfilingContext.__dict__["_log_metrics"] is TRLS_METHOD  # put back when training ended


def test_reward_watch_records_each_scored_batch_at_the_step_it_trains(grpo_run):
    samples = [r for r in grpo_run if isinstance(r, Samples)]
    watched = {s.step: s.as_dicts() for s in samples if s.name == REWARDS}
    completions = {s.step: s.as_dicts() for s in samples if s.name == COMPLETIONS}
    assert sorted(watched) == sorted(completions) == [1, 2, 3]
    for step, rows in watched.items():
        assert [r["completion"] for r in rows] == [r["completion"] for r in completions[step]]
        assert [r["prompt"] for r in rows] == [r["prompt"] for r in completions[step]]
        assert [r["reward/length_reward"] for r in rows] == pytest.approx([len(r["completion"]) / 50 for r in rows])
        assert [r["reward"] for r in rows] == pytest.approx([r["reward"] for r in completions[step]])


# -- RewardWatch in a plain loop -------------------------------------------------------------------
def test_a_plain_loop_gathers_one_set_per_batch_bounded_by_the_runs_limits(tmp_path):
    run = rldk_track.init(dir=tmp_path, analyzers=None, samples=SampleLimits(max_rows=2))
    watch = RewardWatch(samples=True, run=run)
    length, constant = watch([length_reward, constant_reward])
    run.log({"loss": 1.0}, step=7)
    batch = ["a", "bbb", "cc"]
    length(prompts=["p"] * 3, completions=batch)
    constant(prompts=["p"] * 3, completions=batch)  # the batch is complete: recorded now
    length(prompts=["q"], completions=["dddd"])  # its partner never scores it
    watch.flush()
    run.finish(timeout=60)
    recorded = [r for _, r in read_records(run.dir / "events" / f"{run.id}.jsonl") if isinstance(r, Samples)]
    assert [(s.step, s.name) for s in recorded] == [(7, REWARDS), (7, REWARDS)]
    first, second = recorded
    assert first.columns == ("prompt", "completion", "reward", "reward/length_reward", "reward/constant_reward")
    assert first.as_dicts() == [
        {"prompt": "p", "completion": "a", "reward": pytest.approx(0.52), "reward/length_reward": 0.02,
         "reward/constant_reward": 0.5},
        {"prompt": "p", "completion": "bbb", "reward": pytest.approx(0.56), "reward/length_reward": 0.06,
         "reward/constant_reward": 0.5},
    ]
    assert any("max_rows" in note for note in first.notes)
    assert second.as_dicts() == [{"prompt": "q", "completion": "dddd", "reward": 0.08, "reward/length_reward": 0.08}]


def test_samples_without_a_run_are_reported_once_and_scoring_goes_on(caplog):
    (length,) = RewardWatch(samples=True)([length_reward])
    assert length(completions=["ab"]) == [0.04] and length(completions=["abcd"]) == [0.08]
    assert len([r for r in caplog.records if "has no run to record into" in r.getMessage()]) == 1


def test_metrics_doc_lists_every_profiled_block():
    from rldk_track.keymaps import TRL_PROFILING

    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
    for block, stage in TRL_PROFILING.items():
        assert f"`{block}`" in doc and f"`perf/{stage}_s`" in doc, block


def test_an_rloo_run_gets_the_same_timings_and_watched_samples(tiny_lm_path, tiny_lm_prompts, tmp_path):
    callback = RLDKCallback(backend="jsonl", dir=tmp_path / "runs", analyzers=None, checkpoint_health=False,
                            system_metrics=False)
    trainer = trl.RLOOTrainer(
        model=str(tiny_lm_path), reward_funcs=RewardWatch(samples=True)([length_reward]),
        train_dataset=Dataset.from_dict({"prompt": tiny_lm_prompts[:8]}),
        args=trl.RLOOConfig(str(tmp_path / "out"), num_generations=2, max_completion_length=8, logging_steps=2,
                            report_to=[], bf16=False, use_cpu=True, disable_tqdm=True, per_device_train_batch_size=4,
                            seed=0, save_strategy="no", max_steps=4),
        callbacks=[callback],
    )
    trainer.train()
    run = callback.run
    records = [r for _, r in read_records(run.dir / "events" / f"{run.id}.jsonl")]
    logged = [r for r in records if isinstance(r, Metrics) and "loss/total" in r.values]
    assert [m.step for m in logged] == [2, 4]
    assert all(m.values["perf/generate_s"] > 0 and m.values["perf/reward/length_reward_s"] > 0 for m in logged)
    watched = [s for s in records if isinstance(s, Samples) and s.name == REWARDS]
    assert [s.step for s in watched] == [1, 2, 3, 4]  # every scored batch, also between logging steps
    for s in watched:
        assert [r["reward"] for r in s.as_dicts()] == pytest.approx([len(r["completion"]) / 50 for r in s.as_dicts()])
    assert ProfilingContext.__dict__["_log_metrics"] is TRLS_METHOD


def test_a_run_trl_logged_to_mlflow_itself_finds_its_profiling_keys_under_the_perf_names(tmp_path, monkeypatch):
    """TRL's own ``report_to="mlflow"`` logging (the fluent API TRL uses), read back by load_runs."""
    import mlflow

    from rldk_track.keymaps import resolve
    from rldk_track.readers import load_runs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert mlflow.get_tracking_uri() == uri
    with mlflow.start_run(run_name="trl-itself"):
        for step in (1, 2):
            for name, seconds in (("transformers.generate", 0.5 * step), ("_calculate_rewards", 0.1 * step)):
                # what ProfilingContext.__exit__ calls with the measured duration: TRL's own logging
                ProfilingContext(f"GRPOTrainer.{name}", report_to=["mlflow"], step=step)._log_metrics(seconds)
    runset = load_runs(tmp_path / "mlflow.db")
    known = set(runset.metric_names)
    assert "profiling/Time taken: GRPOTrainer.transformers.generate" in known
    frame = runset.frame
    for canonical, expected in (("perf/generate_s", [0.5, 1.0]), ("perf/reward_s", [0.1, 0.2])):
        key = resolve(canonical, known)
        assert key.startswith("profiling/Time taken: GRPOTrainer.")
        points = frame[frame["metric"] == key]
        assert sorted(points["step"]) == [1, 2] and sorted(points["value"]) == pytest.approx(expected)
