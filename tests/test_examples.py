"""The examples in ``examples/`` run as a user would run them (small settings) and record what
they say they record: each test reads the run back, from the event log or the third-party
tracker's own file, and checks the values, not only that the script finished."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import rldk_track

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Import ``examples/<name>.py`` as its script would run (its folder on ``sys.path``), with
    the working directory in a temporary folder."""
    monkeypatch.chdir(tmp_path)

    def load(name: str) -> ModuleType:
        path = EXAMPLES / f"{name}.py"
        monkeypatch.syspath_prepend(str(path.parent))
        spec = importlib.util.spec_from_file_location(f"example_{name.replace('/', '_')}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def test_plain_loop_records_metrics_timings_and_its_own_alert(example, tmp_path: Path) -> None:
    plain_loop = example("plain_loop")
    run_id = plain_loop.train(steps=60, lr=0.5, dir=tmp_path / "runs")

    runs = rldk_track.load_runs(tmp_path / "runs")
    [name] = runs.run_names
    row = runs.runs.loc[name]
    assert (name, row["run_id"], row["status"]) == ("bandit-lr0.5", run_id, "success")
    assert row["params"]["lr"] == 0.5 and row["tags"]["example"] == "plain_loop"
    reward = runs.series(name, "reward/mean")
    assert list(reward["step"]) == list(range(1, 61))
    assert reward["value"].iloc[-10:].mean() > reward["value"].iloc[:10].mean()  # it learns the best arm
    for stage in ("rollout", "update"):  # one timing per step, each positive
        timings = runs.series(name, f"perf/{stage}_s")["value"]
        assert len(timings) == 60 and (timings > 0).all()
    entropy = runs.series(name, "entropy/mean")
    first_below = int(entropy[entropy["value"] < plain_loop.ENTROPY_FLOOR]["step"].iloc[0])
    ours = runs.alerts[runs.alerts["rule"] == "exploration_stopped"]
    assert list(zip(ours["step"], ours["severity"], ours["metric"])) == [(first_below, "warning", "entropy/mean")]
    assert ours["value"].iloc[0] < ours["threshold"].iloc[0] == plain_loop.ENTROPY_FLOOR
    assert row["summary"]["best_action_prob"] > 0.5


def test_compare_runs_finds_the_aggressive_learning_rate_higher_in_reward(example, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    compare_runs = example("compare_runs")
    result = compare_runs.main(["--dir", str(tmp_path / "runs"), "--steps", "40", "--plot", str(tmp_path / "c.png")])

    assert result.runset.run_names == ["bandit-lr0.05", "bandit-lr0.5"] and result.baseline == "bandit-lr0.05"
    assert result.metrics == ["reward/mean", "kl/mean", "entropy/mean"]
    [reward] = result.tests[result.tests["metric"] == "reward/mean"].itertuples()
    assert (reward.run, reward.direction, bool(reward.significant)) == ("bandit-lr0.5", "higher", True)
    finals = result.summary[result.summary["metric"] == "reward/mean"].set_index("run")["final_mean"]
    assert finals["bandit-lr0.5"] > finals["bandit-lr0.05"]
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert "bandit-lr0.5 higher" in capsys.readouterr().out


def test_trl_grpo_example_records_each_grpo_metric_once_under_its_canonical_name(example, tmp_path: Path) -> None:
    pytest.importorskip("trl")
    trl_grpo = example("trl_grpo")
    callback = trl_grpo.train(steps=2, dir=tmp_path / "runs", output_dir=tmp_path / "out")

    runs = rldk_track.load_runs(tmp_path / "runs")
    [name] = runs.run_names
    row = runs.runs.loc[name]
    assert (name, row["run_id"], row["status"]) == ("grpo-tiny", callback.run.id, "success")
    assert row["tags"]["rldk.framework"] == "trl" and row["tags"]["rldk.trainer"] == "GRPOTrainer"
    assert row["params"]["args/num_generations"] == 4 and row["params"]["model/config/n_layer"] == 2
    [names_file] = (tmp_path / "runs").rglob("rldk/metric_names.json")
    renamed = json.loads(names_file.read_text())["renamed"]
    for trl_name, canonical in (("reward", "reward/mean"), ("kl", "kl/mean"), ("entropy", "entropy/mean"),
                                ("rewards/says_cat/mean", "reward/says_cat/mean")):
        assert renamed[trl_name] == canonical and trl_name not in runs.metric_names, trl_name
        assert list(runs.series(name, canonical)["step"]) == [1, 2], canonical
    reward = runs.series(name, "reward/mean")["value"]
    assert list(runs.series(name, "reward/says_cat/mean")["value"]) == list(reward)  # the one reward function
    assert reward.between(0.0, 1.0).all() and (runs.series(name, "kl/mean")["value"] >= 0).all()


def test_openrlhf_command_example_parses_both_halves_with_the_real_parsers(example, openrlhf_installed: None) -> None:
    openrlhf_command = example("openrlhf_command")
    plan = openrlhf_command.main()

    settings = plan["settings"]
    assert settings.backend == ["mlflow"] and settings.init["mlflow"] == {"tracking_uri": "http://127.0.0.1:5000"}
    assert settings.init["project"] == "rlhf-ppo" and settings.init["tags"] == {"team": "alignment"}
    assert plan["starts_ray"] is True  # python -m openrlhf.cli.train_ppo_ray: Ray with the setup hook
    assert plan["runtime_env"]["worker_process_setup_hook"] == "rldk_track.integrations.openrlhf.setup_worker"
    args = plan["openrlhf_args"]  # OpenRLHF's own parse, nested as OpenRLHF nests it
    assert args.actor.model_name_or_path == "Qwen/Qwen2.5-0.5B-Instruct"
    assert (args.rollout.n_samples_per_prompt, args.algo.kl.init_coef, args.actor.adam.lr) == (4, 0.01, 5e-7)
    assert args.logger.wandb.run_name == "ppo-qwen0.5b"


@pytest.mark.parametrize(("launcher", "openrlhf"), [
    (["--backend", "mlflow"], ["--actor.learning_rate", "1e-6"]),  # OpenRLHF's flag is --actor.adam.lr
    (["--backnd", "mlflow"], ["--actor.adam.lr", "1e-6"]),
])
def test_openrlhf_command_example_refuses_a_misspelled_flag_on_either_side(example, openrlhf_installed: None,
                                                                          launcher: list[str], openrlhf: list[str]) -> None:
    openrlhf_command = example("openrlhf_command")
    with pytest.raises(SystemExit) as exit_info:
        openrlhf_command.check(openrlhf_command.command(launcher, openrlhf))
    assert exit_info.value.code == 2  # argparse's usage error


def test_third_party_backend_installed_offline_is_used_by_name(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    package = shutil.copytree(EXAMPLES / "third_party_backend", tmp_path / "package")  # pip builds in place
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(package)], check=True, timeout=240)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(target), str(REPO)))}
    out = subprocess.run([sys.executable, str(package / "use_it.py"), "--folder", str(tmp_path / "csv"),
                          "--dir", str(tmp_path / "runs")], capture_output=True, text=True, timeout=120, env=env,
                         cwd=tmp_path, check=False)
    assert out.returncode == 0, out.stderr

    runs = rldk_track.load_runs(tmp_path / "runs")  # the event log, written next to the csv backend
    [name] = runs.run_names
    run_id = runs.runs.loc[name, "run_id"]
    with open(tmp_path / "csv" / f"{run_id}.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    points = {(int(r["step"]), r["metric"]): float(r["value"]) for r in rows if r["metric"] != "status"}
    logged = {(int(s), str(m)): v for s, m, v in runs.frame[["step", "metric", "value"]].itertuples(index=False)}
    assert points == logged and len(points) == 10
    assert all(math.isclose(points[step, "reward/mean"], step / 5) for step in range(1, 6))
    assert [(r["metric"], r["value"]) for r in rows if r["metric"] == "status"] == [("status", "success")]
    assert runs.runs.loc[name, "status"] == "success"
