"""RLDKCallback on real TRL trainers (tiny local GPT-2, CPU, a few steps): what each trainer logs
reaches the tracker once, under its canonical name (the renames an artifact), at the trainer's global step, with
the run's config, summary, checkpoint health and system metrics; a pathological run's alert shows
in MLflow; training that stops early or dies ends the run with the right status; other ranks stay
silent; the demo runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
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

from rldk_track import keymaps  # noqa: E402
from rldk_track.eventlog import read_records  # noqa: E402
from rldk_track.demo import grpo as demo_grpo  # noqa: E402
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


class MlflowRun:
    """What the MLflow tracking server holds for one of our runs (found by its rldk.run_id tag)."""

    def __init__(self, client: Any, project: str, run_id: str) -> None:
        experiment = client.get_experiment_by_name(project)
        (self.run,) = client.search_runs([experiment.experiment_id], f"tags.`rldk.run_id` = '{run_id}'")
        self.client, self.id = client, self.run.info.run_id

    def series(self, key: str) -> dict[int, float]:
        return {m.step: m.value for m in self.client.get_metric_history(self.id, key)}

    def artifact_names(self, folder: str) -> list[str]:
        return [a.path for a in self.client.list_artifacts(self.id, folder)]

    def text(self, name: str) -> str:
        return Path(self.client.download_artifacts(self.id, name)).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def grpo_run(tiny_lm_path: Path, data: dict, mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory):
    """Four GRPO steps into the MLflow server with the default analyzers, checkpoint health (a
    checkpoint every two steps) and system metrics: ``(callback, trainer, mlflow run)``."""
    tmp = tmp_path_factory.mktemp("grpo")
    project = f"trl-grpo-{uuid.uuid4().hex[:8]}"
    callback = RLDKCallback(backend="mlflow", project=project, dir=tmp / "runs", system_metrics=0.2,
                            mlflow={"tracking_uri": mlflow_server.uri})
    trainer = grpo(tiny_lm_path, tmp / "out", data, [callback], max_steps=4, save_strategy="steps", save_steps=2)
    trainer.train()
    return callback, trainer, MlflowRun(mlflow_server.client(), project, callback.run.id)


# -- what a GRPO run leaves in the tracker -----------------------------------------------------
GRPO_NAMES = [("reward", "reward/mean"), ("kl", "kl/mean"), ("entropy", "entropy/mean"),
              ("completions/mean_length", "length/response_mean"), ("grad_norm", "grad/norm"),
              ("learning_rate", "lr"), ("rewards/length_reward/mean", "reward/length_reward/mean")]


def test_grpo_metrics_are_in_mlflow_once_under_canonical_names_at_each_global_step(grpo_run):
    _, trainer, mlflow_run = grpo_run
    history = {entry["step"]: entry for entry in trainer.state.log_history if "reward" in entry}
    assert sorted(history) == [1, 2, 3, 4]
    for trl_name, canonical in GRPO_NAMES:
        expected = {step: pytest.approx(entry[trl_name]) for step, entry in history.items()}
        assert mlflow_run.series(canonical) == expected, canonical
        assert mlflow_run.series(trl_name) == {}, trl_name
    keys = set(mlflow_run.run.data.metrics)
    assert keymaps.renames(keys, "trl") == {}  # no key that is a second name of another one
    renamed = json.loads(mlflow_run.text("rldk/metric_names.json"))
    assert renamed["metric_names"] == "canonical"
    assert all(renamed["renamed"][trl_name] == canonical for trl_name, canonical in GRPO_NAMES)
    assert set(renamed["renamed"].values()) <= keys


def test_grpo_config_is_in_mlflow_params_arguments_model_trainer_versions_seed_commit(grpo_run):
    _, _, mlflow_run = grpo_run
    params = mlflow_run.run.data.params
    assert params["trainer/class"] == "GRPOTrainer"
    assert params["trainer/args_class"] == "trl.trainer.grpo_config.GRPOConfig"
    assert params["args/num_generations"] == "4" and params["args/beta"] == "0.04"
    assert params["model/class"] == "GPT2LMHeadModel" and params["model/config/n_layer"] == "2"
    assert int(params["model/num_parameters"]) > 0
    assert params["versions/trl"] == trl.__version__
    assert params["seeds/seed"] == "0"
    assert len(params["git/commit"]) == 40  # the tests run inside the project's repository
    tags = mlflow_run.run.data.tags
    assert tags["rldk.framework"] == "trl" and tags["rldk.trainer"] == "GRPOTrainer"
    assert tags["rldk.framework_version"] == trl.__version__


def test_end_of_training_line_is_the_summary_not_a_step_series(grpo_run):
    callback, _, mlflow_run = grpo_run
    assert {"train_runtime", "train_samples_per_second", "train_loss"} <= merged(callback, "summary").keys()
    assert not series(callback, "train_runtime") and not series(callback, "train_loss")
    assert list(mlflow_run.series("train_loss")) == [4]  # one value, at the last step


def test_each_checkpoint_gets_a_health_artifact_and_score(grpo_run):
    callback, _, mlflow_run = grpo_run
    assert mlflow_run.artifact_names("rldk/checkpoints") == ["rldk/checkpoints/step_2", "rldk/checkpoints/step_4"]
    scores = mlflow_run.series("checkpoint/health_score")
    assert sorted(scores) == [2, 4]
    for step in (2, 4):
        health = json.loads(mlflow_run.text(f"rldk/checkpoints/step_{step}/health.json"))
        assert health["path"].endswith(f"checkpoint-{step}")
        assert health["score"] == pytest.approx(scores[step]) and 0.0 <= health["score"] <= 1.0


def test_system_metrics_are_sampled_during_training(grpo_run):
    _, _, mlflow_run = grpo_run
    assert mlflow_run.series("system/proc_rss_gb")
    assert all(value > 0 for value in mlflow_run.series("system/proc_rss_gb").values())


def test_run_ends_finished_in_mlflow_after_training(grpo_run):
    callback, _, mlflow_run = grpo_run
    assert [r.status for r in of_kind(callback, "run_end")] == ["success"]
    assert mlflow_run.client.get_run(mlflow_run.id).info.status == "FINISHED"
    assert not callback.run.active


# -- a pathological run, end to end ------------------------------------------------------------
@pytest.fixture(scope="module")
def runaway_run(tiny_lm_path: Path, mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory):
    """The demo's reward-hacking run at a far too high learning rate (1e-2), with
    ``stop_on="critical"``: KL runs away from the reference within about twenty steps."""
    tmp = tmp_path_factory.mktemp("runaway")
    project = f"trl-runaway-{uuid.uuid4().hex[:8]}"
    callback = RLDKCallback(backend="mlflow", project=project, dir=tmp / "runs", stop_on="critical",
                            system_metrics=False, mlflow={"tracking_uri": mlflow_server.uri})
    spec = demo_grpo.REWARD_HACKING
    args = demo_grpo.grpo_config(tmp / "out", spec, steps=30, learning_rate=1e-2, max_completion_length=16,
                                 save_strategy="no")
    trainer = demo_grpo.grpo_trainer(tiny_lm_path, spec, args, [callback])
    trainer.train()
    return callback, trainer, MlflowRun(mlflow_server.client(), project, callback.run.id)


def first_step_where_mean_of_last_10_exceeds(kl: dict[int, float], level: float) -> int:
    """The first step where the mean of the last (up to) 10 KL values, from the third on, is over ``level``."""
    steps = sorted(kl)
    return next(step for i, step in enumerate(steps[2:], 2)
                if sum(kl[s] for s in steps[max(0, i - 9):i + 1]) / min(i + 1, 10) > level)


def test_runaway_kl_raises_kl_drift_alerts_at_the_crossing_steps_visible_as_mlflow_tags_and_artifact(runaway_run):
    _, _, mlflow_run = runaway_run
    tags = mlflow_run.run.data.tags
    assert tags["rldk.alert.kl_drift"] == "critical"
    assert tags["rldk.health"] == "critical"
    alerts = [json.loads(line) for line in mlflow_run.text("rldk/alerts.jsonl").splitlines()]
    drift = [(a["severity"], a["step"]) for a in alerts if a["rule"] == "kl_drift" and a["state"] == "raised"]
    kl = mlflow_run.series("kl/mean")  # the rule: mean of the last 10 KL values over 0.3, critical over 3.0
    assert drift == [("warning", first_step_where_mean_of_last_10_exceeds(kl, 0.3)),
                     ("critical", first_step_where_mean_of_last_10_exceeds(kl, 3.0))]


def test_stop_on_critical_stops_the_runaway_run_right_after_the_alert_and_says_why(runaway_run):
    callback, trainer, mlflow_run = runaway_run
    critical = [a for a in of_kind(callback, "alert") if a.severity == "critical" and a.state == "raised"]
    stopped_at = trainer.state.global_step
    assert critical[0].step <= stopped_at <= critical[0].step + 2 < 30
    assert f"{critical[0].rule} (critical) at step {critical[0].step}" in mlflow_run.run.data.tags["rldk.stopped_by"]
    stop_alerts = [a for a in of_kind(callback, "alert") if a.rule == "training_stopped"]
    assert [(a.step, a.severity) for a in stop_alerts] == [(stopped_at, "info")]
    assert [r.status for r in of_kind(callback, "run_end")] == ["killed"]
    assert mlflow_run.client.get_run(mlflow_run.id).info.status == "KILLED"


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
        assert sorted(series(callback, canonical)) == logged_steps, canonical
        assert series(callback, trl_name) == {}, trl_name
    assert [r.status for r in of_kind(callback, "run_end")] == ["success"]


def test_evaluation_metrics_map_to_eval_names_once_per_evaluation(tiny_lm_path, data, tmp_path):
    callback = callback_for(tmp_path)
    trainer = plain_trainer(tiny_lm_path, tmp_path / "out", data, [callback], max_steps=4, eval_strategy="steps", eval_steps=2)
    trainer.train()
    assert merged(callback, "tags")["rldk.trainer"] == "Trainer"
    evaluations = [r for r in records(callback) if isinstance(r, Metrics) and "eval/loss/total" in r.values]
    assert [r.step for r in evaluations] == [2, 4]
    assert not any("eval_loss" in r.values for r in evaluations)
    assert "eval/runtime" in evaluations[0].values


def test_evaluation_outside_a_logging_trainer_is_recorded_by_on_evaluate(tmp_path):
    """A custom loop that only sends on_evaluate still gets its metrics recorded."""
    callback = callback_for(tmp_path)
    args, state, control = TrainingArguments(str(tmp_path / "out"), report_to=[]), TrainerState(), TrainerControl()
    callback.on_train_begin(args, state, control)
    state.global_step = 7
    callback.on_evaluate(args, state, control, metrics={"eval_reward": 0.5, "eval_skipped": None})
    callback.on_train_end(args, state, control)
    assert series(callback, "eval/reward/mean") == {7: 0.5}
    assert not series(callback, "eval_skipped")


@pytest.mark.parametrize(("metric_names", "recorded"), [
    ("canonical", {"reward/mean": 0.5, "kl/mean": 0.1, "epoch": 1.0}),
    ("both", {"reward": 0.5, "reward/mean": 0.5, "kl": 0.1, "kl/mean": 0.1, "epoch": 1.0}),
    ("original", {"reward": 0.5, "kl": 0.1, "epoch": 1.0}),
])
def test_metric_names_picks_the_names_each_value_is_recorded_under(metric_names, recorded, tmp_path):
    callback = callback_for(tmp_path, metric_names=metric_names)
    args, state, control = TrainingArguments(str(tmp_path / "out"), report_to=[]), TrainerState(), TrainerControl()
    callback.on_train_begin(args, state, control)
    state.global_step = 1
    callback.on_log(args, state, control, logs={"reward": 0.5, "kl": 0.1, "epoch": 1.0})
    callback.on_train_end(args, state, control)
    assert merged(callback, "metrics") == recorded
    names = [a for a in of_kind(callback, "artifact") if a.name == "rldk/metric_names.json"]
    if metric_names == "original":
        assert names == []
    else:  # the renames, in the event log and staged in the run's folder like any artifact
        (artifact,) = names
        assert json.loads(Path(artifact.path).read_text())["renamed"] == {"kl": "kl/mean", "reward": "reward/mean"}


def test_an_unknown_metric_names_choice_fails_when_the_callback_is_created():
    with pytest.raises(ValueError, match="'canonical', 'both', 'original'"):
        RLDKCallback(metric_names="trl")


# -- stopping, dying, ranks ----------------------------------------------------------------------
class CriticalAtStep:
    """An analyzer stand-in: raises a critical alert when it sees ``reward/mean`` at ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def observe(self, batch):
        return [Alert(-1, 0.0, r.step, "test_rule", "critical", "reward went wrong", "reward/mean", r.values["reward/mean"], 0.0)
                for r in batch if isinstance(r, Metrics) and r.step == self.step and "reward/mean" in r.values]


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


# -- the main job and the metrics table -----------------------------------------------------------
@pytest.mark.timeout(900)  # a hang guard only: two real GRPO runs took over 300 s on a loaded 2-core machine
def test_demo_quick_trains_both_runs_into_mlflow_and_tensorboard_and_prints_how_to_open_them(tmp_path, capsys, monkeypatch):
    from rldk_track.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--quick", "--dir", "runs"]) == 0
    out = capsys.readouterr().out
    assert "grpo-healthy" in out and "grpo-reward-hacking" in out
    runs_dir = tmp_path.absolute() / "runs"
    assert f"rldk-track ui --dir {runs_dir}\n" in out  # runnable as printed: see tests/cli/test_first_hour.py
    assert f"mlflow ui --backend-store-uri sqlite:///{runs_dir}/mlflow.db" in out
    assert f"tensorboard --logdir {runs_dir}/tensorboard" in out
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("rldk-demo").experiment_id])
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [("grpo-healthy", "FINISHED"),
                                                                     ("grpo-reward-hacking", "FINISHED")]
    assert all(r.data.metrics["reward/mean"] > 0 for r in runs)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for name in ("grpo-healthy", "grpo-reward-hacking"):
        events = EventAccumulator(str(tmp_path / "runs" / "tensorboard" / name))
        events.Reload()
        assert [e.step for e in events.Scalars("reward/mean")] == list(range(1, 7))


def test_metrics_doc_lists_every_key_of_the_trl_and_openrlhf_maps():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
    for table in (keymaps.TRL, keymaps.OPENRLHF):
        for key, canonical in table.items():
            assert f"`{key}`" in doc, f"docs/metrics.md does not list {key!r}"
            assert f"`{canonical}`" in doc, f"docs/metrics.md does not list {canonical!r}"
