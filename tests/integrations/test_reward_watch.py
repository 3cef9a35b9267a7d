"""RewardWatch: what it counts and times at each call, in TRL's logs through log_metric and without
it, and in a real GRPO run where a reward function returns NaN (which TRL's own logs hide)."""

from __future__ import annotations

import asyncio
import inspect
import math

from rldk_track.integrations.reward_watch import RewardWatch, Scored


def accuracy(completions, **kwargs):
    return [math.nan if "x" in c else (None if c == "" else 1.0) for c in completions]


def test_a_wrapped_function_keeps_its_name_and_outputs_and_reports_nonfinite_and_none_fractions():
    watch = RewardWatch()
    (wrapped,) = watch([accuracy])
    out = wrapped(prompts=["p"] * 4, completions=["ab", "x", "", "cd"])
    assert wrapped.__name__ == "accuracy" and out[0] == 1.0 and math.isnan(out[1]) and out[2] is None
    metrics = watch.take_metrics()
    assert metrics["reward/accuracy/nonfinite_frac"] == 0.25 and metrics["reward/accuracy/none_frac"] == 0.25
    assert metrics["perf/reward/accuracy_s"] >= 0 and watch.take_metrics() == {}


def test_with_trls_log_metric_the_metrics_go_to_the_trainer_and_on_score_sees_the_batch():
    logged, seen = [], []
    wrapped = RewardWatch(on_score=seen.append).wrap(accuracy)
    wrapped(prompts=["p", "q"], completions=["x", "ok"], log_metric=lambda k, v: logged.append((k, v)))
    assert ("reward/accuracy/nonfinite_frac", 0.5) in logged
    (scored,) = seen
    assert isinstance(scored, Scored) and scored.fn == "accuracy" and list(scored.completions) == ["x", "ok"]


def test_async_functions_stay_async_and_callable_instances_are_named_by_their_class():
    async def judge(completions, **kwargs):
        return [0.5 for _ in completions]

    class Length:
        def __call__(self, completions, **kwargs):
            return [float(len(c)) for c in completions]

    watch = RewardWatch()
    wrapped_judge, wrapped_length = watch([judge, Length()])
    assert inspect.iscoroutinefunction(wrapped_judge)
    assert asyncio.run(wrapped_judge(completions=["a"])) == [0.5]
    assert wrapped_length.__name__ == "Length" and wrapped_length(completions=["abc"]) == [3.0]


def test_a_grpo_run_whose_reward_returns_nan_raises_reward_nonfinite(tiny_lm_path, tiny_lm_prompts, tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from rldk_track.eventlog import read_records
    from rldk_track.integrations.trl import RLDKCallback
    from rldk_track.records import Alert, Metrics

    def sometimes_nan(completions, trainer_state, **kwargs):
        return [math.nan if trainer_state.global_step >= 1 and i == 0 else 1.0 for i, _ in enumerate(completions)]

    callback = RLDKCallback(backend="jsonl", dir=tmp_path / "runs", analyzers="default", system_metrics=False,
                            checkpoint_health=False)
    args = GRPOConfig(output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=8, num_generations=4,
                      max_completion_length=8, logging_steps=1, report_to=[], use_cpu=True, save_strategy="no",
                      disable_tqdm=True, log_level="error")
    trainer = GRPOTrainer(model=str(tiny_lm_path), reward_funcs=RewardWatch()([sometimes_nan]), args=args,
                          train_dataset=Dataset.from_dict({"prompt": tiny_lm_prompts[:8]}), callbacks=[callback])
    trainer.train()
    records = [r for _, r in read_records(callback.run.dir / "events" / f"{callback.run.id}.jsonl")]
    fracs = [r.values["reward/sometimes_nan/nonfinite_frac"] for r in records if isinstance(r, Metrics)
             and "reward/sometimes_nan/nonfinite_frac" in r.values]
    assert fracs == [0.0, 0.125, 0.125]
    raised = [a for a in records if isinstance(a, Alert) and a.state == "raised"]
    assert [(a.rule, a.step) for a in raised if a.rule.startswith("reward_nonfinite")] == [("reward_nonfinite/sometimes_nan", 2)]
