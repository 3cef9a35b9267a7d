"""RLDKCallback on real TRL trainers (tiny local GPT-2, CPU, a few steps): what each trainer logs
reaches the tracker under its TRL name and its canonical name at the trainer's global step, with
the run's config and summary; training that stops early or dies ends the run with the right
status; other ranks stay silent."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest

pytest.importorskip("trl")

import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from rldk_track.backends.jsonl import read_records  # noqa: E402
from rldk_track.integrations.trl import RLDKCallback  # noqa: E402
from rldk_track.records import Alert, Metrics  # noqa: E402

pytestmark = pytest.mark.timeout(300)

TRAIN_ARGS = dict(logging_steps=1, report_to=[], bf16=False, use_cpu=True, disable_tqdm=True,
                  per_device_train_batch_size=4, seed=0, save_strategy="no")


def length_reward(completions: list[str], **_: Any) -> list[float]:
    return [len(c) / 50 for c in completions]


# -- reading what the tracker holds ----------------------------------------------------------
def records(callback: RLDKCallback) -> list[Any]:
    run = callback.run
    return [r for _, r in read_records(run.dir / "events" / f"{run.id}.jsonl")]


def series(callback: RLDKCallback, key: str) -> dict[int, float]:
    return {r.step: r.values[key] for r in records(callback) if isinstance(r, Metrics) and key in r.values}


def of_kind(callback: RLDKCallback, kind: str) -> list[Any]:
    return [r for r in records(callback) if r.kind == kind]


def merged(callback: RLDKCallback, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in of_kind(callback, kind):
        out.update(r.values)
    return out


def callback_for(tmp_path: Path, **kwargs: Any) -> RLDKCallback:
    return RLDKCallback(dir=tmp_path / "runs", **{"analyzers": None, "checkpoint_health": False,
                                                   "system_metrics": False, **kwargs})


# -- trainers --------------------------------------------------------------------------------
def grpo(model: Path, out: Path, data: dict, callbacks: list, **args: Any) -> trl.GRPOTrainer:
    return trl.GRPOTrainer(
        model=str(model), reward_funcs=length_reward, train_dataset=Dataset.from_dict({"prompt": data["prompts"]}),
        args=trl.GRPOConfig(str(out), num_generations=4, max_completion_length=8, beta=0.04, **{**TRAIN_ARGS, **args}),
        callbacks=callbacks,
    )


def rloo(model: Path, out: Path, data: dict, callbacks: list, **args: Any) -> trl.RLOOTrainer:
    return trl.RLOOTrainer(
        model=str(model), reward_funcs=length_reward, train_dataset=Dataset.from_dict({"prompt": data["prompts"]}),
        args=trl.RLOOConfig(str(out), num_generations=2, max_completion_length=8, **{**TRAIN_ARGS, **args}),
        callbacks=callbacks,
    )


def dpo(model: Path, out: Path, data: dict, callbacks: list, **args: Any) -> trl.DPOTrainer:
    pairs = {"prompt": data["prompts"], "chosen": data["endings"], "rejected": data["endings"][::-1]}
    return trl.DPOTrainer(model=str(model), train_dataset=Dataset.from_dict(pairs),
                          args=trl.DPOConfig(str(out), max_length=32, **{**TRAIN_ARGS, **args}), callbacks=callbacks)


def sft(model: Path, out: Path, data: dict, callbacks: list, **args: Any) -> trl.SFTTrainer:
    return trl.SFTTrainer(model=str(model), train_dataset=Dataset.from_dict({"text": data["lines"]}),
                          args=trl.SFTConfig(str(out), max_length=32, **{**TRAIN_ARGS, **args}), callbacks=callbacks)


def reward_model(model: Path, out: Path, data: dict, callbacks: list, **args: Any) -> trl.RewardTrainer:
    tokenizer = AutoTokenizer.from_pretrained(model)
    scorer = AutoModelForSequenceClassification.from_pretrained(model, num_labels=1)
    scorer.config.pad_token_id = tokenizer.pad_token_id
    pairs = {"chosen": data["lines"], "rejected": data["lines"][::-1]}
    return trl.RewardTrainer(model=scorer, processing_class=tokenizer, train_dataset=Dataset.from_dict(pairs),
                             args=trl.RewardConfig(str(out), max_length=32, **{**TRAIN_ARGS, **args}), callbacks=callbacks)


def kto(model: Path, out: Path, data: dict, callbacks: list, **args: Any) -> trl.KTOTrainer:
    rows = {"prompt": data["prompts"], "completion": data["endings"], "label": [i % 2 == 0 for i in range(len(data["prompts"]))]}
    return trl.KTOTrainer(model=str(model), train_dataset=Dataset.from_dict(rows),
                          args=trl.KTOConfig(str(out), max_length=32, **{**TRAIN_ARGS, **args}), callbacks=callbacks)


def online_dpo(model: Path, out: Path, data: dict, callbacks: list, **args: Any) -> Any:
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    return OnlineDPOTrainer(
        model=str(model), reward_funcs=length_reward, processing_class=AutoTokenizer.from_pretrained(model),
        train_dataset=Dataset.from_dict({"prompt": data["prompts"]}),
        args=OnlineDPOConfig(str(out), max_new_tokens=8, **{**TRAIN_ARGS, **args}), callbacks=callbacks,
    )


def plain_trainer(model: Path, out: Path, data: dict, callbacks: list, **args: Any) -> Trainer:
    tokenizer = AutoTokenizer.from_pretrained(model)
    encoded = tokenizer(data["lines"], truncation=True, max_length=32)
    rows = Dataset.from_dict({"input_ids": encoded["input_ids"], "labels": encoded["input_ids"]})
    return Trainer(model=AutoModelForCausalLM.from_pretrained(model), train_dataset=rows, eval_dataset=rows.select(range(4)),
                   args=TrainingArguments(str(out), per_device_eval_batch_size=1, **{**TRAIN_ARGS, "per_device_train_batch_size": 1, **args}),
                   callbacks=callbacks)


@pytest.fixture(scope="module")
def data(tiny_lm_prompts: list[str]) -> dict[str, list[str]]:
    from rldk_track.demo.tiny_lm import corpus_lines

    lines = corpus_lines()[:32]
    return {
        "prompts": tiny_lm_prompts[:32],
        "endings": [" " + " ".join(line.split()[3:]) for line in lines],
        "lines": lines,
    }


@pytest.fixture(scope="module")
def grpo_run(tiny_lm_path: Path, data: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[RLDKCallback, trl.GRPOTrainer]:
    """Four GRPO steps, a checkpoint every two."""
    tmp = tmp_path_factory.mktemp("grpo")
    callback = callback_for(tmp)
    trainer = grpo(tiny_lm_path, tmp / "out", data, [callback], max_steps=4, save_strategy="steps", save_steps=2)
    trainer.train()
    return callback, trainer


# -- what a GRPO run leaves in the tracker -----------------------------------------------------
def test_grpo_metrics_are_stored_under_trl_and_canonical_names_at_each_global_step(grpo_run):
    callback, trainer = grpo_run
    history = {entry["step"]: entry for entry in trainer.state.log_history if "reward" in entry}
    for trl_name, canonical in [("reward", "reward/mean"), ("kl", "kl/mean"), ("entropy", "entropy/mean"),
                                ("completions/mean_length", "length/response_mean"), ("grad_norm", "grad/norm"),
                                ("learning_rate", "lr"), ("rewards/length_reward/mean", "reward/length_reward/mean")]:
        stored = series(callback, trl_name)
        assert stored == {step: pytest.approx(entry[trl_name]) for step, entry in history.items()}, trl_name
        assert series(callback, canonical) == stored, canonical
    assert sorted(history) == [1, 2, 3, 4]


def test_grpo_config_holds_arguments_model_trainer_versions_and_seed(grpo_run, tiny_lm_path):
    callback, _ = grpo_run
    config = merged(callback, "params")
    assert config["trainer"]["class"] == "GRPOTrainer"
    assert config["trainer"]["args_class"] == "trl.trainer.grpo_config.GRPOConfig"
    assert config["args"]["num_generations"] == 4 and config["args"]["beta"] == 0.04
    assert config["model"]["config"]["n_layer"] == 2 and config["model"]["class"] == "GPT2LMHeadModel"
    assert config["model"]["num_parameters"] > 0
    assert config["versions"]["trl"] == trl.__version__
    assert config["seeds"]["seed"] == 0
    assert config["git"]["commit"]  # the tests run inside the project's repository
    assert merged(callback, "tags") == {"rldk.framework": "trl", "rldk.trainer": "GRPOTrainer"}


def test_end_of_training_line_is_the_summary_not_a_step_series(grpo_run):
    callback, _ = grpo_run
    summary = merged(callback, "summary")
    assert {"train_runtime", "train_samples_per_second", "train_loss"} <= summary.keys()
    assert not series(callback, "train_runtime") and not series(callback, "train_loss")


def test_run_ends_with_success_after_training(grpo_run):
    callback, _ = grpo_run
    assert [r.status for r in of_kind(callback, "run_end")] == ["success"]
    assert not callback.run.active


# -- every TRL trainer -----------------------------------------------------------------------
TRAINERS: list[tuple[Callable[..., Any], str, dict[str, str]]] = [
    (rloo, "RLOOTrainer", {"reward": "reward/mean", "kl": "kl/mean", "clip_ratio/region_mean": "clip/ratio"}),
    (dpo, "DPOTrainer", {"rewards/margins": "reward/margin", "rewards/accuracies": "reward/accuracy", "loss": "loss/total"}),
    (sft, "SFTTrainer", {"mean_token_accuracy": "accuracy/token", "entropy": "entropy/mean", "loss": "loss/total"}),
    (reward_model, "RewardTrainer", {"accuracy": "reward/accuracy", "margin": "reward/margin", "mean_reward": "reward/mean"}),
    (kto, "KTOTrainer", {"kl": "kl/mean", "rewards/chosen": "reward/chosen", "rewards/margins": "reward/margin"}),
    (online_dpo, "OnlineDPOTrainer", {"objective/kl": "kl/mean", "objective/scores": "reward/mean", "beta": "kl/coef"}),
]


@pytest.mark.parametrize(("make", "trainer_name", "names"), TRAINERS, ids=[t[1] for t in TRAINERS])
def test_each_trl_trainer_is_recorded_with_canonical_names(make, trainer_name, names, tiny_lm_path, data, tmp_path):
    callback = callback_for(tmp_path)
    trainer = make(tiny_lm_path, tmp_path / "out", data, [callback], max_steps=2)
    trainer.train()
    assert merged(callback, "tags")["rldk.trainer"] == trainer_name
    logged_steps = sorted(entry["step"] for entry in trainer.state.log_history if "loss" in entry)
    assert logged_steps == [1, 2]
    for trl_name, canonical in names.items():
        assert sorted(series(callback, trl_name)) == logged_steps, trl_name
        assert series(callback, canonical) == series(callback, trl_name), canonical
    assert [r.status for r in of_kind(callback, "run_end")] == ["success"]


def test_evaluation_metrics_map_to_eval_names_once_per_evaluation(tiny_lm_path, data, tmp_path):
    callback = callback_for(tmp_path)
    trainer = plain_trainer(tiny_lm_path, tmp_path / "out", data, [callback], max_steps=4, eval_strategy="steps", eval_steps=2)
    trainer.train()
    assert merged(callback, "tags")["rldk.trainer"] == "Trainer"
    evaluations = [r for r in records(callback) if isinstance(r, Metrics) and "eval_loss" in r.values]
    assert [r.step for r in evaluations] == [2, 4]
    assert all(r.values["eval/loss/total"] == r.values["eval_loss"] for r in evaluations)
    assert "eval/runtime" in evaluations[0].values


def test_evaluation_outside_a_logging_trainer_is_recorded_by_on_evaluate(tmp_path):
    """A custom loop that only sends on_evaluate still gets its metrics recorded."""
    callback = callback_for(tmp_path)
    args, state, control = TrainingArguments(str(tmp_path / "out"), report_to=[]), TrainerState(), TrainerControl()
    callback.on_train_begin(args, state, control)
    state.global_step = 7
    callback.on_evaluate(args, state, control, metrics={"eval_reward": 0.5, "eval_skipped": None})
    callback.on_train_end(args, state, control)
    assert series(callback, "eval_reward") == {7: 0.5} and series(callback, "eval/reward/mean") == {7: 0.5}
    assert not series(callback, "eval_skipped")


# -- stopping, dying, ranks ----------------------------------------------------------------------
class CriticalAtStep:
    """An analyzer stand-in: raises a critical alert when it sees ``reward`` at ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def observe(self, batch):
        return [Alert(-1, 0.0, r.step, "test_rule", "critical", "reward went wrong", "reward", r.values["reward"], 0.0)
                for r in batch if isinstance(r, Metrics) and r.step == self.step and "reward" in r.values]


def test_stop_on_critical_stops_training_and_says_why(tiny_lm_path, data, tmp_path):
    callback = callback_for(tmp_path, stop_on="critical", observers=[CriticalAtStep(2)])
    trainer = grpo(tiny_lm_path, tmp_path / "out", data, [callback], max_steps=30)
    trainer.train()
    stopped_at = trainer.state.global_step
    assert 2 <= stopped_at < 30
    assert "test_rule (critical) at step 2" in merged(callback, "tags")["rldk.stopped_by"]
    stop_alerts = [a for a in of_kind(callback, "alert") if a.rule == "training_stopped"]
    assert [(a.step, a.severity) for a in stop_alerts] == [(stopped_at, "info")]
    assert [r.status for r in of_kind(callback, "run_end")] == ["killed"]


def test_without_stop_on_a_critical_alert_does_not_stop_training(tiny_lm_path, data, tmp_path):
    callback = callback_for(tmp_path, observers=[CriticalAtStep(1)])
    trainer = grpo(tiny_lm_path, tmp_path / "out", data, [callback], max_steps=3)
    trainer.train()
    assert trainer.state.global_step == 3
    assert [a.rule for a in of_kind(callback, "alert")] == ["test_rule"]
    assert [r.status for r in of_kind(callback, "run_end")] == ["success"]


class FailAtStep(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("training blew up")


def test_a_run_left_open_by_a_crashed_train_is_failed_when_training_restarts(tiny_lm_path, data, tmp_path):
    callback = callback_for(tmp_path)
    with pytest.raises(RuntimeError, match="blew up"):
        sft(tiny_lm_path, tmp_path / "a", data, [callback, FailAtStep(2)], max_steps=4).train()
    crashed = callback.run
    assert crashed.active  # transformers sends no on_train_end when train() raises
    sft(tiny_lm_path, tmp_path / "b", data, [callback], max_steps=1).train()
    assert callback.run is not crashed
    statuses = {run.id: [r.status for _, r in read_records(run.dir / "events" / f"{run.id}.jsonl") if r.kind == "run_end"]
                for run in (crashed, callback.run)}
    assert statuses == {crashed.id: ["failed"], callback.run.id: ["success"]}


def test_an_uncaught_exception_in_training_ends_the_run_as_failed(tiny_lm_path, tmp_path):
    script = textwrap.dedent(f"""
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer
        from transformers import TrainerCallback
        from rldk_track.integrations.trl import RLDKCallback

        class Fail(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step == 2:
                    raise RuntimeError("training blew up")

        callback = RLDKCallback(dir={str(tmp_path / "runs")!r}, analyzers=None, checkpoint_health=False, system_metrics=False)
        SFTTrainer(model={str(tiny_lm_path)!r}, train_dataset=Dataset.from_dict({{"text": ["the cat runs ."] * 16}}),
                   args=SFTConfig({str(tmp_path / "out")!r}, max_steps=4, logging_steps=1, report_to=[], use_cpu=True,
                                  bf16=False, save_strategy="no", per_device_train_batch_size=2, disable_tqdm=True),
                   callbacks=[callback, Fail()]).train()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert result.returncode == 1 and "training blew up" in result.stderr
    (event_log,) = (tmp_path / "runs" / "events").glob("*.jsonl")
    stored = [r for _, r in read_records(event_log)]
    assert [r.status for r in stored if r.kind == "run_end"] == ["failed"]
    assert sorted({r.step for r in stored if isinstance(r, Metrics)}) == [1]  # step 2 died before its log


def test_other_ranks_record_nothing(tmp_path):
    callback = callback_for(tmp_path)
    args, control = TrainingArguments(str(tmp_path / "out"), report_to=[]), TrainerControl()
    state = TrainerState(is_world_process_zero=False, is_local_process_zero=False)
    callback.on_train_begin(args, state, control)
    callback.on_log(args, state, control, logs={"loss": 1.0})
    callback.on_save(args, state, control)
    callback.on_train_end(args, state, control)
    assert callback.run is None
    assert not (tmp_path / "runs").exists()


def test_a_misspelled_backend_fails_when_the_callback_is_created():
    with pytest.raises(ValueError, match="unknown backend 'mlfow'"):
        RLDKCallback(backend="mlfow")


def test_stop_on_accepts_only_warning_or_critical():
    with pytest.raises(ValueError, match="stop_on"):
        RLDKCallback(stop_on="error")
