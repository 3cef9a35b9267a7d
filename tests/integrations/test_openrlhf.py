"""OpenRLHF's own trainer methods, patched in process by ``install()``: what they log reaches the
tracker under OpenRLHF's names and canonical names at ``global_step``, with the KL coefficient,
evaluation results, samples, checkpoint health and analyzer alerts; only rank 0 records; a failing
step ends the run as failed; OpenRLHF's own behaviour is unchanged.

The trainers are the installed openrlhf wheel's (CUDA-only imports stood in at import time only);
around them: OpenRLHF's nested args, a plain-PyTorch strategy in place of DeepSpeed, and a
stand-in for the PPO controller's Ray actor group (``rldk_testsupport.openrlhf_minimal``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import pytest

from rldk_testsupport import openrlhf_minimal as om

from rldk_track.eventlog import read_records
from rldk_track.integrations import openrlhf as integration
from rldk_track.integrations.common import git_commit
from rldk_track.records import Alert, Artifact, CheckpointHealth, Metrics, RunEnd, RunStart, Samples

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _unpatched_afterwards() -> Iterator[None]:
    """Every test leaves OpenRLHF unpatched and no run open."""
    yield
    integration.uninstall()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, openrlhf_trainers: dict[str, Any]) -> Path:
    """A tiny GPT-2 on disk, for OpenRLHF's Actor (OpenRLHF imported, or the test skipped)."""
    return om.save_tiny_causal_lm(tmp_path_factory.mktemp("tiny_gpt2"))


# -- reading the event log (the local tracker) --------------------------------------------------
def records(run_dir: Path, run_id: str, rank: int = 0) -> list[Any]:
    name = f"{run_id}.jsonl" if rank == 0 else f"{run_id}.rank{rank}.jsonl"
    return [r for _, r in read_records(run_dir / "events" / name)]


def series(recs: list[Any], key: str) -> dict[int, float]:
    return {r.step: r.values[key] for r in recs if isinstance(r, Metrics) and key in r.values}


@pytest.fixture
def ppo_trainer(tmp_path: Path, ray_local: str, openrlhf_trainers: dict[str, Any]) -> Any:
    """Builds OpenRLHF's BasePPOTrainer. Ray is up, as for the real controller: OpenRLHF's methods
    ``ray.get`` what the actor group returns."""

    def build(**args: Any) -> Any:
        # PPOTrainer.__init__ turns --ckpt.save_steps -1 into inf; BasePPOTrainer sees the result
        defaults = {"ckpt__path": str(tmp_path / "ckpt"), "ckpt__save_steps": float("inf")}
        return om.ppo_trainer(om.openrlhf_args(**{**defaults, **args}))

    return build


# -- PPO ----------------------------------------------------------------------------------------
def test_ppo_logs_reach_mlflow_under_openrlhf_and_canonical_names_at_global_step(
    ppo_trainer: Any, tmp_path: Path, mlflow_server: Any
) -> None:
    integration.install("mlflow", dir=tmp_path / "runs", run_id="ppo-mlflow", project="openrlhf-ppo-names",
                        mlflow={"tracking_uri": mlflow_server.uri}, analyzers=None)
    trainer = ppo_trainer()
    for step in (1, 2, 3):
        trainer.save_logs_and_checkpoints(step, om.ppo_logs(step, kl=0.01 * step), {"global_step": step})
    integration.uninstall()

    client = mlflow_server.client()
    [run] = client.search_runs([client.get_experiment_by_name("openrlhf-ppo-names").experiment_id])
    history = lambda key: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}  # noqa: E731
    assert history("kl") == history("kl/mean") == pytest.approx({1: 0.01, 2: 0.02, 3: 0.03})
    assert history("ppo_clip_ratio") == history("clip/ratio") == {1: 0.05, 2: 0.05, 3: 0.05}
    assert history("response_length") == history("length/response_mean") == {1: 121.0, 2: 122.0, 3: 123.0}
    assert history("timing/generation") == history("perf/generation_s") == {1: 4.0, 2: 4.0, 3: 4.0}
    assert history("perf/step_s") == {1: 7.8, 2: 7.8, 3: 7.8}  # timing/step_total
    assert history("kl/coef") == {1: 0.01, 2: 0.01, 3: 0.01}  # kl_ctl.value, which OpenRLHF never logs
    assert "generated_samples" not in run.data.metrics
    assert run.info.status == "FINISHED"


def test_ppo_samples_are_the_completions_sample_set_in_every_tracker_not_metrics(
    ppo_trainer: Any, tmp_path: Path, mlflow_server: Any
) -> None:
    from rldk_track.readers import load_runs

    project = f"openrlhf-samples-{uuid.uuid4().hex[:8]}"
    integration.install(["mlflow", "tensorboard", "wandb"], dir=tmp_path / "runs", run_id="ppo-samples",
                        project=project, analyzers=None, mlflow={"tracking_uri": mlflow_server.uri})
    trainer = ppo_trainer()
    for step in (1, 2, 3):
        trainer.save_logs_and_checkpoints(step, om.ppo_logs(step, reward=0.1 * step))
    integration.uninstall()

    recs = records(tmp_path / "runs", "ppo-samples")
    assert [(s.step, s.name, s.columns) for s in recs if isinstance(s, Samples)] == [
        (step, "completions", ("text", "reward")) for step in (1, 2, 3)]
    assert not any("generated_samples" in r.values for r in recs if isinstance(r, Metrics))
    assert not any(r.name.startswith("openrlhf/samples") for r in recs if isinstance(r, Artifact))
    sources = {"jsonl": str(tmp_path / "runs"), "mlflow": f"mlflow://{project}",
               "tensorboard": f"tensorboard://{tmp_path / 'runs' / 'tensorboard'}", "wandb": str(tmp_path / "runs" / "wandb")}
    for kind, source in sources.items():
        samples = load_runs(source, tracking_uri=mlflow_server.uri).samples
        assert samples["step"].tolist() == [1, 2, 3], kind
        assert samples["text"].tolist() == [f"sample text of step {s}" for s in (1, 2, 3)], kind
        assert samples["reward"].astype(float).tolist() == pytest.approx([0.1, 0.2, 0.3]), kind


def test_kl_coefficient_is_the_adaptive_controllers_value_at_each_step(ppo_trainer: Any, tmp_path: Path) -> None:
    integration.install(dir=tmp_path / "runs", run_id="ppo-klcoef", analyzers=None)
    trainer = ppo_trainer(algo__kl__target=0.01, algo__kl__horizon=100)
    expected = {}
    for step, kl in ((1, 0.05), (2, 0.05), (3, 0.001)):
        expected[step] = trainer.kl_ctl.value
        trainer.save_logs_and_checkpoints(step, om.ppo_logs(step, kl=kl))
        trainer.kl_ctl.update(kl, 8)  # what train_step does after each PPO update
    integration.uninstall()

    logged = series(records(tmp_path / "runs", "ppo-klcoef"), "kl/coef")
    assert logged == pytest.approx(expected)
    assert len(set(expected.values())) == 3  # the controller moved; the log followed it


def test_kl_blow_up_raises_an_alert_at_the_step_it_happens(ppo_trainer: Any, tmp_path: Path) -> None:
    integration.install(dir=tmp_path / "runs", run_id="ppo-kl-blowup")  # default analyzers
    trainer = ppo_trainer()
    for step in range(1, 41):
        kl = 0.02 + 0.001 * (step % 3) if step < 30 else 0.6  # stable, then blows up at step 30
        trainer.save_logs_and_checkpoints(step, om.ppo_logs(step, kl=kl))
    integration.uninstall()

    alerts = [r for r in records(tmp_path / "runs", "ppo-kl-blowup") if isinstance(r, Alert) and r.state == "raised"]
    spike = [a for a in alerts if a.rule == "kl_spike"]
    assert spike and spike[0].step == 30 and spike[0].severity in ("warning", "critical")
    assert all(a.step >= 30 for a in alerts if a.rule.startswith("kl"))


def test_ppo_eval_results_are_logged_at_their_step(ppo_trainer: Any, tmp_path: Path) -> None:
    integration.install(dir=tmp_path / "runs", run_id="ppo-eval", analyzers=None)
    trainer = ppo_trainer()
    trainer.save_logs_and_checkpoints(4, om.ppo_logs(4))
    trainer.save_best_checkpoint({"eval_math_pass1": 0.25, "eval_response_length_mean": 90.0}, 4)
    integration.uninstall()

    recs = records(tmp_path / "runs", "ppo-eval")
    assert series(recs, "eval_math_pass1") == series(recs, "eval/math_pass1") == {4: 0.25}
    assert series(recs, "eval/response_length_mean") == {4: 90.0}
    # OpenRLHF's own method ran: a new best eval metric saves a best checkpoint through the actor group
    assert [c[1]["tag"] for c in trainer.actor_model_group.calls] == ["best_global_step4"]


def test_each_hf_checkpoint_gets_a_health_verdict_at_its_step(ppo_trainer: Any, tmp_path: Path) -> None:
    integration.install(dir=tmp_path / "runs", run_id="ppo-ckpt", analyzers=None)
    trainer = ppo_trainer(ckpt__save_steps=2, ckpt__save_hf=True)
    for step in (1, 2, 3, 4):
        trainer.save_logs_and_checkpoints(step, om.ppo_logs(step))
    integration.uninstall()

    health = [r for r in records(tmp_path / "runs", "ppo-ckpt") if isinstance(r, CheckpointHealth)]
    assert [(h.step, Path(h.path).name) for h in health] == [(2, "global_step2_hf"), (4, "global_step4_hf")]
    assert all(0.0 <= h.score <= 1.0 for h in health)
    assert [c[1]["tag"] for c in trainer.actor_model_group.calls] == ["global_step2", "global_step4"]


def test_a_failing_checkpoint_save_ends_the_run_failed_and_reraises(ppo_trainer: Any, tmp_path: Path) -> None:
    integration.install(dir=tmp_path / "runs", run_id="ppo-fail", analyzers=None)
    trainer = ppo_trainer(ckpt__save_steps=2)

    def broken(method_name: str, **kwargs: Any) -> list[Any]:
        raise OSError("disk full")

    trainer.save_logs_and_checkpoints(1, om.ppo_logs(1))
    trainer.actor_model_group.async_run_method = broken
    with pytest.raises(OSError, match="disk full"):
        trainer.save_logs_and_checkpoints(2, om.ppo_logs(2))

    recs = records(tmp_path / "runs", "ppo-fail")
    assert [r.status for r in recs if isinstance(r, RunEnd)] == ["failed"]
    [alert] = [r for r in recs if isinstance(r, Alert)]
    assert (alert.rule, alert.severity) == ("training_error", "critical") and "disk full" in alert.message
    assert sorted(series(recs, "kl")) == [1, 2]  # step 2 was logged before OpenRLHF tried to save


def test_logging_follows_openrlhfs_logging_steps(ppo_trainer: Any, tmp_path: Path) -> None:
    integration.install(dir=tmp_path / "runs", run_id="ppo-every2", analyzers=None)
    trainer = ppo_trainer(logger__logging_steps=2)
    for step in range(1, 6):
        trainer.save_logs_and_checkpoints(step, om.ppo_logs(step))
    integration.uninstall()

    assert sorted(series(records(tmp_path / "runs", "ppo-every2"), "kl")) == [2, 4]


def test_a_run_that_cannot_start_is_tried_once_and_training_goes_on(
    ppo_trainer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rldk_track

    attempts = []

    def refusing_init(*args: Any, **kwargs: Any) -> Any:
        attempts.append(kwargs.get("run_id"))
        raise RuntimeError("the tracker refused the run")

    monkeypatch.setattr(rldk_track, "init", refusing_init)
    integration.install(dir=tmp_path / "runs", run_id="ppo-no-start", analyzers=None)
    trainer = ppo_trainer()
    for step in (1, 2, 3):
        trainer.save_logs_and_checkpoints(step, om.ppo_logs(step))

    assert attempts == ["ppo-no-start"]  # not again at every logging call, on the training thread
    assert integration.current_run() is None


def test_run_config_is_openrlhfs_args_with_the_wandb_key_redacted(ppo_trainer: Any, tmp_path: Path) -> None:
    integration.install(dir=tmp_path / "runs", run_id="ppo-config", analyzers=None)
    trainer = ppo_trainer()
    trainer.args.logger.wandb.key = "0123456789abcdef0123456789abcdef01234567"  # set after __init__: no W&B login
    trainer.save_logs_and_checkpoints(1, om.ppo_logs(1))
    integration.uninstall()

    recs = records(tmp_path / "runs", "ppo-config")
    [params] = [r for r in recs if r.kind == "params"]
    assert params.values["algo"]["kl"]["init_coef"] == 0.01
    assert params.values["logger"]["wandb"]["key"] == "***REDACTED***"
    assert "0123456789abcdef" not in (tmp_path / "runs" / "events" / "ppo-config.jsonl").read_text()
    [start] = [r for r in recs if isinstance(r, RunStart)]
    assert start.name == "openrlhf-test-run"  # OpenRLHF's --logger.wandb.run_name
    tags = {k: v for r in recs if r.kind == "tags" for k, v in r.values.items()}
    assert tags["rldk.framework"] == "openrlhf" and tags["rldk.trainer"] == "BasePPOTrainer"
    assert tags["rldk.framework_version"] == metadata.version("openrlhf")


def test_run_config_records_the_library_versions_and_the_git_commit(ppo_trainer: Any, tmp_path: Path) -> None:
    integration.install(dir=tmp_path / "runs", run_id="ppo-provenance", analyzers=None)
    ppo_trainer().save_logs_and_checkpoints(1, om.ppo_logs(1))
    integration.uninstall()

    [params] = [r for r in records(tmp_path / "runs", "ppo-provenance") if r.kind == "params"]
    versions = params.values["versions"]
    assert versions["openrlhf"] == metadata.version("openrlhf") and versions["torch"] == metadata.version("torch")
    assert versions["ray"] == metadata.version("ray") and versions["rldk_track"]
    assert params.values["git"]["commit"] == git_commit(Path.cwd())  # the tests run inside the repository
    assert len(params.values["git"]["commit"]) == 40


# -- SFT / DPO ------------------------------------------------------------------------------------
def test_sft_fit_logs_what_openrlhfs_own_tensorboard_logger_logs(tmp_path: Path, tiny_model: Path) -> None:
    from rldk_testsupport.tensorboard import read_tb

    integration.install(dir=tmp_path / "runs", run_id="sft", analyzers=None)
    args = om.openrlhf_args(eval__steps=2, logger__tensorboard_dir=str(tmp_path / "tb"))
    trainer = om.sft_trainer(tiny_model, args, train_steps=4)
    trainer.fit(args)
    integration.uninstall()

    recs = records(tmp_path / "runs", "sft")
    theirs = read_tb(tmp_path / "tb" / "openrlhf-test-run").scalars
    for key in ("gpt_loss", "loss_mean", "lr", "grad_norm"):
        assert series(recs, key) == pytest.approx({s: v for s, v, _ in theirs[f"train/{key}"]}), key
    assert series(recs, "loss/lm") == series(recs, "gpt_loss") and sorted(series(recs, "gpt_loss")) == [1, 2, 3, 4]
    assert series(recs, "grad/norm") == series(recs, "grad_norm")
    # evaluation: read from evaluate's own TensorBoard call, which still reaches the user's TensorBoard
    assert series(recs, "eval_gpt_loss") == pytest.approx({s: v for s, v, _ in theirs["eval/eval gpt_loss"]})
    assert sorted(series(recs, "eval/loss/lm")) == [2, 4]


def test_sft_hf_checkpoints_get_health_verdicts(tmp_path: Path, tiny_model: Path) -> None:
    integration.install(dir=tmp_path / "runs", run_id="sft-ckpt", analyzers=None)
    args = om.openrlhf_args(ckpt__path=str(tmp_path / "ckpt"), ckpt__save_steps=2, ckpt__save_hf=True)
    trainer = om.sft_trainer(tiny_model, args, train_steps=4, eval_batches=0, save_hf_ckpt=True)
    trainer.fit(args)
    integration.uninstall()

    health = [r for r in records(tmp_path / "runs", "sft-ckpt") if isinstance(r, CheckpointHealth)]
    assert [(h.step, Path(h.path).name) for h in health] == [(2, "global_step2_hf"), (4, "global_step4_hf")]
    assert health[1].stats.get("drift") is not None  # compared with the step-2 checkpoint


def test_sft_on_a_non_zero_rank_records_nothing(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    integration.install(dir=tmp_path / "runs", run_id="sft-rank1", analyzers=None)
    args = om.openrlhf_args(eval__steps=2)
    om.sft_trainer(tiny_model, args, train_steps=2).fit(args)
    integration.uninstall()

    assert not (tmp_path / "runs").exists()


def test_sft_on_a_non_zero_rank_with_per_rank_writes_its_own_log(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    integration.install(dir=tmp_path / "runs", run_id="sft-perrank", analyzers=None, per_rank=True)
    args = om.openrlhf_args()
    om.sft_trainer(tiny_model, args, train_steps=2, eval_batches=0).fit(args)
    integration.uninstall()

    assert sorted(p.name for p in (tmp_path / "runs" / "events").glob("*.jsonl")) == ["sft-perrank.rank1.jsonl"]
    recs = records(tmp_path / "runs", "sft-perrank", rank=1)
    [start] = [r for r in recs if isinstance(r, RunStart)]
    assert (start.rank, start.world_size) == (1, 2) and start.host
    assert sorted(series(recs, "gpt_loss")) == [1, 2]
    assert sorted(series(recs, "system/peak_proc_rss_gb")) == [1, 2]


@pytest.mark.parametrize(("local_rank", "samples_system"), [("0", True), ("1", False)])
def test_per_rank_system_metrics_are_sampled_on_one_rank_per_node(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, local_rank: str, samples_system: bool
) -> None:
    monkeypatch.setenv("RANK", "1")  # global rank 1: node 0's rank 1, or node 1's first rank
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    integration.install(dir=tmp_path / "runs", run_id="sft-system", analyzers=None, per_rank=True, system_metrics=True)
    args = om.openrlhf_args()
    om.sft_trainer(tiny_model, args, train_steps=2, eval_batches=0).fit(args)
    integration.uninstall()

    recs = records(tmp_path / "runs", "sft-system", rank=1)
    assert bool(series(recs, "system/cpu_pct")) is samples_system
    assert sorted(series(recs, "gpt_loss")) == [1, 2]


def test_system_metrics_given_as_a_number_is_the_seconds_between_samples(ppo_trainer: Any, tmp_path: Path) -> None:
    import time

    integration.install(dir=tmp_path / "runs", run_id="ppo-system", analyzers=None, system_metrics=0.05)
    trainer = ppo_trainer()
    trainer.save_logs_and_checkpoints(1, om.ppo_logs(1))
    time.sleep(0.6)
    integration.uninstall()

    samples = [r for r in records(tmp_path / "runs", "ppo-system") if isinstance(r, Metrics) and "system/cpu_pct" in r.values]
    assert len(samples) >= 3  # every 10 s (True) would have taken one


def test_a_failing_sft_fit_ends_the_run_failed(tmp_path: Path, tiny_model: Path) -> None:
    integration.install(dir=tmp_path / "runs", run_id="sft-fail", analyzers=None)
    args = om.openrlhf_args()
    trainer = om.sft_trainer(tiny_model, args, train_steps=4, eval_batches=0)
    step_once = trainer.strategy.optimizer_step

    def optimizer_step(optimizer: Any, model: Any, scheduler: Any, **kwargs: Any) -> None:
        if getattr(model.model, "global_steps", 0) == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        step_once(optimizer, model, scheduler, **kwargs)

    trainer.strategy.optimizer_step = optimizer_step
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.fit(args)

    recs = records(tmp_path / "runs", "sft-fail")
    assert sorted(series(recs, "gpt_loss")) == [1, 2]
    assert [r.status for r in recs if isinstance(r, RunEnd)] == ["failed"]


def test_dpo_preference_metrics_get_canonical_names(tmp_path: Path, openrlhf_trainers: dict[str, Any]) -> None:
    DPOTrainer = openrlhf_trainers["openrlhf.trainer.dpo_trainer"].DPOTrainer
    integration.install(dir=tmp_path / "runs", run_id="dpo", analyzers=None)
    args = om.openrlhf_args()
    trainer = object.__new__(DPOTrainer)  # the fields its save_logs_and_checkpoints reads
    trainer.__dict__.update(strategy=om.TorchStrategy(args), _wandb=None, _tensorboard=None,
                            eval_dataloader=None, disable_ds_ckpt=True, save_hf_ckpt=False)
    logs = {"loss": 0.69, "acc": 0.5, "chosen_reward": 0.1, "reject_reward": -0.1, "lr": 5e-7,
            "grad_norm": 1.2, "nll_loss": 2.3, "loss_mean": 0.68, "acc_mean": 0.55}
    trainer.save_logs_and_checkpoints(args, 3, None, logs, {"consumed_samples": 6})
    integration.uninstall()

    [metrics] = [r for r in records(tmp_path / "runs", "dpo") if isinstance(r, Metrics)]
    assert metrics.step == 3
    assert {k: metrics.values[k] for k in ("reward/chosen", "reward/rejected", "reward/accuracy", "loss/total",
                                           "loss/nll", "grad/norm", "lr")} == {
        "reward/chosen": 0.1, "reward/rejected": -0.1, "reward/accuracy": 0.5, "loss/total": 0.69,
        "loss/nll": 2.3, "grad/norm": 1.2, "lr": 5e-7}
    assert set(logs) <= set(metrics.values)


# -- installing -----------------------------------------------------------------------------------
def test_install_twice_wraps_once_and_uninstall_restores_openrlhfs_methods(openrlhf_trainers: dict[str, Any]) -> None:
    BasePPOTrainer = openrlhf_trainers["openrlhf.trainer.ppo_trainer"].BasePPOTrainer
    SFTTrainer = openrlhf_trainers["openrlhf.trainer.sft_trainer"].SFTTrainer
    original = BasePPOTrainer.save_logs_and_checkpoints

    assert integration.install() and integration.install()
    wrapped = BasePPOTrainer.save_logs_and_checkpoints
    assert wrapped.__rldk_original__ is original
    assert integration.is_patched(SFTTrainer) and integration.is_patched(SFTTrainer, "evaluate")
    integration.uninstall()
    assert BasePPOTrainer.save_logs_and_checkpoints is original and not integration.is_patched(SFTTrainer)


def test_a_module_imported_after_the_hook_is_registered_is_patched_before_anyone_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rldk_track.integrations import post_import

    (tmp_path / "late_trainer.py").write_text("class Trainer:\n    def log(self):\n        return 'original'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []

    def patch(module: Any) -> None:
        seen.append(module.__name__)
        module.Trainer.log = lambda self: "patched"

    post_import.when_imported("late_trainer", patch)
    try:
        import late_trainer  # noqa: PLC0415 - the import under test

        assert late_trainer.Trainer().log() == "patched" and seen == ["late_trainer"]
    finally:
        post_import.forget("late_trainer", patch)
        sys.modules.pop("late_trainer", None)
    assert "late_trainer" not in post_import._finder.callbacks


def test_install_without_openrlhf_changes_nothing_and_says_so(tmp_path: Path) -> None:
    # -S: no site-packages, so neither openrlhf nor anything else installed is importable
    code = ("import logging, sys; logging.basicConfig()\n"
            "from rldk_track.integrations import openrlhf as integration\n"
            "print(integration.install(), sys.meta_path[0].__class__.__name__)\n")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    installed, first_finder = out.stdout.split()
    assert installed == "False" and first_finder != "_PostImportFinder"
    assert "OpenRLHF is not installed" in out.stderr


def test_a_misspelled_backend_fails_at_install_and_at_launch_not_at_the_first_log(
    openrlhf_installed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from rldk_track.integrations.openrlhf_launch import launch

    with pytest.raises(ValueError, match="unknown backend 'mlfow'"):
        integration.install("mlfow")
    assert launch(["true"], integration.Settings(backend=["mlfow"])) == 2
    assert "unknown backend 'mlfow'" in capsys.readouterr().err


def test_ray_runtime_env_carries_the_hook_the_settings_and_openrlhfs_own_defaults(tmp_path: Path) -> None:
    settings = integration.Settings(backend=["mlflow"], init={"dir": str(tmp_path), "per_rank": True})
    env = integration.ray_runtime_env(settings, run_id="abc123", base={"env_vars": {"NCCL_DEBUG": "INFO"}, "pip": ["x"]})

    assert env["worker_process_setup_hook"] == "rldk_track.integrations.openrlhf.setup_worker"
    assert env["pip"] == ["x"]
    assert env["env_vars"]["RLDK_RUN_ID"] == "abc123" and env["env_vars"]["RLDK_TRACK_DIR"] == str(tmp_path)
    assert env["env_vars"]["NCCL_DEBUG"] == "INFO"  # the user's value wins over OpenRLHF's default
    assert env["env_vars"]["RAY_ENABLE_ZERO_COPY_TORCH_TENSORS"] == "1"
    assert integration.Settings.from_json(env["env_vars"]["RLDK_OPENRLHF"]) == settings
    with pytest.raises(ValueError, match="worker_process_setup_hook"):
        integration.ray_runtime_env(settings, run_id="x", base={"worker_process_setup_hook": "their.hook"})


def test_launcher_tells_python_commands_from_others() -> None:
    from rldk_track.integrations.openrlhf_launch import python_target

    assert python_target(["python", "-m", "openrlhf.cli.train_ppo_ray", "--a", "1"]) == (
        "module", "openrlhf.cli.train_ppo_ray", ["--a", "1"])
    assert python_target([sys.executable, "-u", "train.py", "x"]) == ("path", "train.py", ["x"])
    assert python_target(["deepspeed", "--module", "openrlhf.cli.train_sft"]) is None
    assert python_target(["torchrun", "--nproc_per_node", "2", "train.py"]) is None


def test_launcher_starts_ray_for_openrlhfs_ray_entry_points_only() -> None:
    from rldk_track.integrations.openrlhf_launch import uses_ray

    assert uses_ray(["python", "-m", "openrlhf.cli.train_ppo_ray", "--a", "1"])
    assert uses_ray([sys.executable, "scripts/my_ray_job.py"])
    assert not uses_ray(["python", "-m", "openrlhf.cli.train_sft"])
    assert not uses_ray(["python", "-m", "rayless.cli.train_sft"])  # the module's last name decides
    assert not uses_ray(["deepspeed", "--module", "openrlhf.cli.train_ppo_ray"])
    assert uses_ray(["python", "-m", "openrlhf.cli.train_sft"], ray=True)
    assert not uses_ray(["python", "-m", "openrlhf.cli.train_ppo_ray"], ray=False)


def test_launcher_patches_every_python_process_of_a_command_and_keeps_the_users_sitecustomize(
    tmp_path: Path, openrlhf_installed: None
) -> None:
    user_site = tmp_path / "user_site"
    user_site.mkdir()
    (user_site / "sitecustomize.py").write_text("import os\nos.environ['USER_SITECUSTOMIZE'] = 'ran'\n")
    child = ("import os, sys\n"
             "hooked = any(type(f).__name__ == '_PostImportFinder' for f in sys.meta_path)\n"
             "print(hooked, os.environ.get('USER_SITECUSTOMIZE'), os.environ['RLDK_RUN_ID'])\n")
    out = subprocess.run(
        [sys.executable, "-m", "rldk_track.cli", "openrlhf", "--run-id", "shared-id", "--dir", str(tmp_path / "runs"),
         "--", "bash", "-c", f'{sys.executable} -c "$0"', child],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(user_site)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "ran", "shared-id"]


def test_at_exit_the_buffered_samples_reach_the_run_before_it_ends_although_a_backend_started_later(
    tmp_path: Path,
) -> None:
    # Seen in the real PPO job on the GPU (docs/openrlhf.md): every backend start moves the
    # lifecycle's exit hook to the front of atexit's queue, so the run ended before the session's
    # own exit hook could log PPO's buffered samples (and wait for checkpoint analyses in flight).
    code = (
        "from types import SimpleNamespace as NS\n"
        "from rldk_track.integrations import openrlhf as integration\n"
        "session = integration._Session(integration.Settings(backend='tensorboard', init={'dir': %r}))\n"
        "args = NS(logger=NS(logging_steps=1))\n"
        "session.log_train(object(), args, 1, {'reward': 0.5, 'generated_samples': ['User: 1+1 Assistant: 2', 1.0]})\n"
        "assert session.run.flush(60).complete  # the TensorBoard backend has started\n"
    ) % str(tmp_path / "runs")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    (event_log,) = (tmp_path / "runs" / "events").glob("*.jsonl")
    records = [record for _, record in read_records(event_log)]
    kinds = [type(record).__name__ for record in records]
    ended = kinds.index("RunEnd")
    samples = [r for r in records[:ended] if type(r).__name__ == "Samples" or "samples" in getattr(r, "name", "")]
    assert len(samples) == 1, kinds
    assert records[-1].status == "success"


def test_a_relaunch_that_loads_the_checkpoint_continues_the_run(tmp_path: Path, openrlhf_installed: None) -> None:
    ckpt = tmp_path / "ckpt"
    child = "import os; print(os.environ['RLDK_RUN_ID'])"

    def launch(*flags: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "rldk_track.cli", "openrlhf", "--dir", str(tmp_path / "runs"), "--",
             sys.executable, "-c", child, "--ckpt.path", str(ckpt), *flags],
            capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, "RLDK_RUN_ID": ""},
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split()[-1]

    first = launch()
    assert (ckpt / "rldk_run_id").read_text().strip() == first
    assert launch("--ckpt.load_enable") == first  # OpenRLHF 0.11's spelling
    assert launch("--load_checkpoint") == first  # older releases'
    assert launch() != first  # a fresh start (no checkpoint loaded) is a new run
