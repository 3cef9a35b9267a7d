"""What a new user types in the first hour: the README's and the demo's commands in a fresh shell
(the checkout's ``.venv/bin`` not on PATH), and the command line's conventions."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import rldk_track
from rldk_track.cli import main
from rldk_track.cli.demo import open_commands
from rldk_track.cli.ui import Server, _stop, free_port, wait_ready

README = Path(__file__).resolve().parents[2] / "README.md"
VENV = Path(sys.executable).parent.parent
SERVE_TIMEOUT_S = 180.0


def fresh_shell_env(home: Path) -> dict[str, str]:
    """A login shell's environment: system PATH only (no venv activated), a new HOME. PYTHONPATH
    is kept so the code under test is the one imported."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "WANDB_MODE": "offline", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def readme_block(title: str) -> list[str]:
    """The commands of the README's bash block after the line starting with ``title``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(title)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block, f"no bash block after {title!r}"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A checkout after `make demo`: ``.venv`` (this interpreter's environment) and ``rldk_runs``
    holding two runs in the event log, MLflow and TensorBoard."""
    root = tmp_path / "checkout"
    root.mkdir()
    (root / ".venv").symlink_to(VENV, target_is_directory=True)
    runs = root / "rldk_runs"
    for name, reward in (("baseline", 0.4), ("tuned", 0.6)):
        run = rldk_track.init(backend=["mlflow", "tensorboard"], dir=runs, project="first-hour", run_name=name,
                              mlflow={"tracking_uri": f"sqlite:///{runs / 'mlflow.db'}"})
        for step in range(30):
            run.log({"reward/mean": reward + 0.001 * step, "kl/mean": 0.02}, step=step)
        run.finish(timeout=120)
    # finish may leave records for `rldk-track sync` (it gives up early on a tracker that has not
    # answered yet, e.g. MLflow still creating its sqlite tables); sync delivers them
    from rldk_track.sync import sync

    assert all(result.complete for result in sync(str(runs), timeout=300))
    return root


def run_like_a_user(commands: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Run each command as typed; one that serves forever (a UI) is started on a free port,
    must answer, and is stopped; ``rldk-track ui`` gets ``--check`` (start, answer, stop)."""
    servers: list[Server] = []
    try:
        for command in commands:
            argv = shlex.split(command)
            tool = Path(argv[0]).name
            if tool == "rldk-track" and argv[1] == "ui":
                argv += ["--check", "--mlflow-port", "0", "--tensorboard-port", "0"]
            elif tool in ("mlflow", "tensorboard"):
                port = free_port(0)
                argv += ["--port", str(port), "--host", "127.0.0.1"]
                process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL, start_new_session=True)
                ready = "/health" if tool == "mlflow" else "/data/runs"
                servers.append(Server(tool, f"http://127.0.0.1:{port}", ready, argv, process))
                continue
            done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=SERVE_TIMEOUT_S)
            assert done.returncode == 0, f"{command!r} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        for server in servers:
            assert wait_ready(server, SERVE_TIMEOUT_S), f"{server.name} did not answer: {server.command}"
            if server.name == "mlflow":  # it serves the store the command named, with the runs in it
                request = urllib.request.Request(f"{server.url}/api/2.0/mlflow/experiments/search",
                                                 data=b'{"max_results": 10}', headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert "first-hour" in response.read().decode()
    finally:
        for server in servers:
            _stop(server.process)


def test_readme_commands_work_in_a_fresh_shell(checkout, tmp_path):
    commands = readme_block("Then look at the run")
    assert any(c.split()[:2] == [".venv/bin/rldk-track", "ui"] for c in commands)
    run_like_a_user(commands, checkout, fresh_shell_env(tmp_path))


def test_demo_prints_commands_that_work_in_a_fresh_shell(checkout, tmp_path, monkeypatch):
    monkeypatch.chdir(checkout)
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    lines = open_commands(Path("rldk_runs"), ["mlflow", "tensorboard"])
    commands = [line.strip() for line in lines if line.startswith("    ")]
    assert commands and all(str(checkout / "rldk_runs") in c for c in commands)  # absolute: any cwd works
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_like_a_user([c.replace(".venv/", f"{checkout}/.venv/", 1) if c.startswith(".venv/") else c for c in commands],
                    elsewhere, fresh_shell_env(tmp_path))


@pytest.mark.parametrize("argv", [["demo", "--backend", "mlfow"], ["sync", ".", "--to", "mlfow"]])
def test_a_misspelled_backend_exits_2_with_one_line_naming_the_fix(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown backend 'mlfow'; did you mean 'mlflow'?" in err[0]


def test_version_and_verbose_after_the_command(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.strip() == f"rldk-track {rldk_track.__version__}"
    assert main(["list", str(tmp_path / "none"), "-v"]) == 2  # -v accepted after the command
    assert main(["-v", "list", str(tmp_path / "none")]) == 2


def test_json_format_and_output_spellings_agree_across_commands(tmp_path, capsys):
    run = rldk_track.init(dir=tmp_path, run_name="one")
    run.log({"reward/mean": 1.0}, step=0)
    run.finish()
    for argv in (["list", str(tmp_path), "--json"], ["list", str(tmp_path), "--format", "json"],
                 ["sync", str(tmp_path), "--json"], ["doctor", "--dir", str(tmp_path), "--format", "json"],
                 ["analyze", str(tmp_path), "--format", "json", "--no-progress"]):
        main(argv)
        out = capsys.readouterr().out
        json.loads(out) if argv[0] != "analyze" else [json.loads(line) for line in out.splitlines()]
    for spelling in ("-o", "--output", "--out"):
        target = tmp_path / f"compare{spelling.strip('-')}.json"
        assert main(["compare", str(tmp_path), "--json", spelling, str(target), "--no-progress"]) == 0
        assert json.loads(target.read_text())["baseline"] == "one"


def test_list_shows_the_runs_of_a_store(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 0
    assert "no runs under" in capsys.readouterr().out
    for name in ("alpha", "beta"):
        run = rldk_track.init(run_name=name)  # the default dir: ./rldk_runs
        run.log({"reward/mean": 1.0}, step=0)
        if name == "beta":
            run.alert("kl_spike", "KL jumped", severity="critical")
        run.finish()
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["RUN", "RUN_ID", "BACKEND"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["alpha"][3:5] == ["success", "ok"] and rows["beta"][3:5] == ["success", "critical"]


def test_export_writes_points_and_a_run_summary_in_each_format(tmp_path, capsys):
    import pandas as pd

    run = rldk_track.init(dir=tmp_path, run_name="exported", config={"lr": 0.1})
    for step in range(5):
        run.log({"reward/mean": step / 10, "kl/mean": 0.02}, step=step)
    run.alert("kl_spike", "KL jumped", step=3)
    run.finish()
    readers = {".parquet": pd.read_parquet, ".csv": lambda p: pd.read_csv(p, float_precision="round_trip"), ".jsonl": lambda p: pd.read_json(p, lines=True, precise_float=True)}
    for suffix, read in readers.items():
        target = tmp_path / "out" / f"runs{suffix}"
        assert main(["export", str(tmp_path), "-o", str(target), "-m", "reward/mean", "--no-progress"]) == 0
        points = read(target)
        assert list(points.columns) == ["run", "step", "metric", "value", "wall_time"]
        assert points["value"].tolist() == [step / 10 for step in range(5)] and set(points["metric"]) == {"reward/mean"}
        (summary,) = json.loads((tmp_path / "out" / "runs.runs.json").read_text())
        assert summary["run"] == "exported" and summary["params"] == {"lr": 0.1} and summary["status"] == "success"
        assert [a["rule"] for a in summary["alerts"]] == ["kl_spike"]
    assert main(["export", str(tmp_path), "-o", str(tmp_path / "runs.xlsx")]) == 2


def test_analyze_fails_a_run_that_already_holds_alerts(tmp_path, capsys):
    run = rldk_track.init(dir=tmp_path, run_name="sick")
    for step in range(20):
        run.log({"reward/mean": 0.5}, step=step)
    run.alert("kl_spike", "KL jumped", severity="critical", step=5)
    run.finish()
    assert main(["analyze", str(tmp_path), "--analyzers", "nonfinite", "--no-progress"]) == 1
    assert "sick: no new alerts; it already holds kl_spike (critical)" in capsys.readouterr().out


def test_tracking_mode_disabled_records_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("RLDK_TRACK_MODE", "disabled")
    run = rldk_track.init(backend=["tensorboard"], dir=tmp_path)
    run.log({"reward/mean": 1.0}, step=0)
    assert not run.active and run.finish().complete
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("RLDK_TRACK_MODE", "disbled")
    with pytest.raises(ValueError, match="RLDK_TRACK_MODE"):
        rldk_track.init(dir=tmp_path)


def test_the_demos_hacking_run_shows_its_alerts_evidence_and_the_printed_samples_command_prints_it(tmp_path, monkeypatch):
    """The hacking run of ``rldk-track demo --quick`` (few steps, untrained model: completions run
    to the length cap) raises truncation with the longest completions as evidence, read back from
    the event log and MLflow; the ``samples`` commands the demo prints show them in a fresh shell."""
    from rldk_track.cli.demo import evidence_rules
    from rldk_track.demo.grpo import REWARD_HACKING
    from rldk_track.demo.job import QUICK_STEPS, run_demo
    from rldk_track.readers import load_runs

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(VENV, target_is_directory=True)
    monkeypatch.chdir(checkout)
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    (result,) = run_demo(Path("rldk_runs"), steps=QUICK_STEPS, backends=["mlflow"], runs=[REWARD_HACKING],
                         pretrain_steps=0, progress=lambda _: None)
    assert result.delivered and "truncation" in evidence_rules([result])
    runs = checkout / "rldk_runs"
    for source in (runs, runs / "mlflow.db"):  # the event log, then MLflow's store
        alerts = load_runs(source).alerts
        (evidence, *_) = alerts[(alerts["rule"] == "truncation") & alerts["evidence"].notna()]["evidence"]
        assert evidence["name"] == "completions" and evidence["by"] == "length" and len(evidence["rows"]) == 3
        assert {"row", "prompt", "completion", "reward"} <= set(evidence["columns"])
    commands = [line.strip() for line in open_commands(Path("rldk_runs"), ["mlflow"], evidence_rules([result]))
                if line.startswith("    ") and " samples " in line]
    (truncation,) = [c for c in commands if c.endswith(f"rldk-track samples {runs} --alert truncation")]
    printed = []
    for command in commands:
        done = subprocess.run(shlex.split(command), cwd=checkout, env=fresh_shell_env(tmp_path), capture_output=True,
                              text=True, timeout=SERVE_TIMEOUT_S)
        assert done.returncode == 0, f"{command!r} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        assert "grpo-reward-hacking" in done.stdout and "completion: " in done.stdout
        printed.append(done.stdout)
    shown = printed[commands.index(truncation)]
    assert "== grpo-reward-hacking  truncation  step" in shown and "rows of samples 'completions' at step" in shown
