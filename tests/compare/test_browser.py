"""The trackers' own web UIs, opened in headless Chromium, show what rldk_track recorded.

Two demo-like runs (one healthy, one pushed into a KL spike and an entropy collapse, both with the
default analyzers) go to the embedded MLflow store, TensorBoard and trackio's local store; ``rldk-track ui`` serves them
on 127.0.0.1; Chromium renders MLflow's training view of the experiment, its runs table, the sick run's page and the
healthy run's latest sample set and the sick run's entropy-collapse evidence as tables (DOM dumps are checked,
screenshots saved under ``docs/img/``); TensorBoard's HTTP API lists the runs and their canonical
scalar tags; trackio's dashboard lists both runs. Select with ``-m browser``; needs Debian's ``chromium``. ``RLDK_UPDATE_SCREENSHOTS=1``
refreshes the committed screenshots.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import rldk_track

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)", allow_module_level=True)

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--hide-scrollbars"]
PROJECT = "rldk-demo"
CANONICAL = {"reward/mean", "kl/mean", "entropy/mean", "loss/total"}


def log_demo_runs(dir: Path) -> None:
    for name, sick in (("grpo-healthy", False), ("grpo-lr-too-high", True)):
        rng = random.Random(name)
        run = rldk_track.init(backend=["mlflow", "tensorboard", "trackio"], dir=dir, project=PROJECT, run_name=name,
                              config={"learning_rate": 1e-3 if sick else 1e-6}, analyzers="default")
        for step in range(150):
            run.log({
                "reward/mean": 0.4 + 0.002 * step + 0.05 * rng.random(),
                "kl/mean": 0.02 + 0.002 * rng.random() + (0.8 if sick and step == 90 else 0.0),
                "entropy/mean": 2.0 - (1.9 if sick and step > 110 else 0.0) + 0.01 * rng.random(),
                "loss/total": 1.0 - 0.002 * step + 0.01 * rng.random(),
            }, step=step)
            if not sick and step % 50 == 49:
                run.log_samples(demo_samples(step), step=step, name="completions")
            if sick and step >= 100 and step % 10 == 0:  # the collapsed policy's completions: evidence
                run.log_samples(collapsed_samples(), step=step, name="completions")
        assert run.finish(timeout=120).complete


def demo_samples(step: int) -> list[dict[str, object]]:
    """A GRPO-like sample set: two prompts, four completions each, rewards and advantages."""
    prompts = {"What is 17 * 3?": ["51", "17 * 3 = 51.", "It is 41.", "fifty-one (51)"],
               "Capital of Peru?": ["Lima", "Lima, Peru.", "Cusco", "The capital is Lima."]}
    return [{"prompt": prompt, "completion": completion, "reward": round(1.0 - 0.3 * k + step / 1000, 3),
             "advantage": round(0.45 - 0.3 * k, 3)}
            for prompt, completions in prompts.items() for k, completion in enumerate(completions)]


def collapsed_samples() -> list[dict[str, object]]:
    """What a collapsed policy writes: nearly one answer, looping, for every prompt."""
    loop = "the answer is the answer is the answer is the answer is"
    return [{"prompt": prompt, "completion": loop if k else "the answer is 51", "reward": 0.4}
            for prompt in ("What is 17 * 3?", "Capital of Peru?") for k in range(4)]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``rldk-track ui`` on the demo store: ``{"dir", "mlflow", "tensorboard", "trackio"}`` URLs."""
    dir = tmp_path_factory.mktemp("demo")
    log_demo_runs(dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "rldk_track.cli", "ui", "--dir", str(dir), "--mlflow-port", "0", "--tensorboard-port", "0",
         "--trackio-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=dir,
    )
    urls: dict[str, str] = {}
    deadline = time.monotonic() + 240
    while len(urls) < 3 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        name, _, url = line.partition(" ")
        urls[name] = url.strip()
    try:
        assert len(urls) == 3, f"ui did not print the three URLs: {urls}\n{process.stderr.read() if process.poll() is not None else ''}"
        page = urls["mlflow"]  # the page ui prints: the experiment, in the training view
        yield {"dir": dir, **urls, "mlflow": page.split("/#", 1)[0], "mlflow_page": page}
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    assert code == 0
    for url in urls.values():  # the UIs went down with it
        with pytest.raises(OSError):
            urllib.request.urlopen(url.split("/#", 1)[0], timeout=2)


def chromium(url: str, tmp_path: Path, *extra: str, budget_ms: int = 10_000) -> str:
    """Chromium's output for ``url`` (a fresh, empty profile each time)."""
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    profile.mkdir()
    result = subprocess.run([CHROMIUM, *FLAGS, f"--virtual-time-budget={budget_ms}", f"--user-data-dir={profile}", *extra, url],
                            capture_output=True, text=True, timeout=180)
    return result.stdout


def screenshot(url: str, tmp_path: Path, name: str, size: str = "1400,900") -> Path:
    """A PNG of ``url``: into ``docs/img/`` when it is not there yet or ``RLDK_UPDATE_SCREENSHOTS=1``
    (so a test run leaves the committed images alone), else into ``tmp_path``."""
    target = IMAGES / name
    if target.exists() and os.environ.get("RLDK_UPDATE_SCREENSHOTS") != "1":
        target = tmp_path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    chromium(url, tmp_path, f"--window-size={size}", f"--screenshot={target}")
    assert target.read_bytes()[:4] == b"\x89PNG"
    return target


def mlflow_runs(served) -> tuple[str, dict[str, object]]:
    from mlflow import MlflowClient

    client = MlflowClient(served["mlflow"])
    experiment = client.get_experiment_by_name(PROJECT).experiment_id
    return experiment, {run.info.run_name: run for run in client.search_runs([experiment])}


def test_the_mlflow_page_ui_prints_opens_the_runs_in_the_training_view(served, tmp_path):
    """MLflow 3.17 opens an experiment in its GenAI view (traces, judges, evaluation runs) unless
    the page asks for the training view; the experiment carries the training kind too."""
    experiment, _ = mlflow_runs(served)
    from mlflow import MlflowClient

    tags = MlflowClient(served["mlflow"]).get_experiment(experiment).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert served["mlflow_page"] == f"{served['mlflow']}/#/experiments/{experiment}?workflowType=machine_learning"
    genai = chromium(f"{served['mlflow']}/#/experiments/{experiment}", tmp_path, "--dump-dom")
    assert "Evaluation runs" in genai  # what the bare address shows
    training = chromium(served["mlflow_page"], tmp_path, "--dump-dom")
    assert "Evaluation runs" not in training and "Judges" not in training
    assert "grpo-healthy" in training and "grpo-lr-too-high" in training
    screenshot(served["mlflow_page"], tmp_path, "mlflow_training_view.png")


def test_mlflow_runs_table_lists_both_runs(served, tmp_path):
    experiment, _ = mlflow_runs(served)
    url = f"{served['mlflow']}/#/experiments/{experiment}/runs?workflowType=machine_learning"
    dom = chromium(url, tmp_path, "--dump-dom")
    assert "grpo-healthy" in dom and "grpo-lr-too-high" in dom
    screenshot(url, tmp_path, "mlflow_runs.png")


def test_mlflow_run_page_shows_the_alert_tags(served, tmp_path):
    experiment, runs = mlflow_runs(served)
    sick = runs["grpo-lr-too-high"]
    assert sick.data.tags["rldk.alert.entropy_collapse"] == "critical"  # the REST API agrees with the page
    assert sick.data.tags["rldk.health"] == "critical"
    url = f"{served['mlflow']}/#/experiments/{experiment}/runs/{sick.info.run_id}?workflowType=machine_learning"
    dom = chromium(url, tmp_path, "--dump-dom")
    for tag in ("rldk.alert.kl_spike", "rldk.alert.entropy_collapse", "rldk.health"):
        assert tag in dom
    screenshot(url, tmp_path, "mlflow_run_alerts.png", size="1400,1000")


def test_mlflow_run_page_shows_the_latest_samples_as_a_table(served, tmp_path):
    experiment, runs = mlflow_runs(served)
    healthy = runs["grpo-healthy"]
    assert healthy.data.tags["rldk.samples.completions"] == "rldk/samples/completions/step_00000149.json"
    url = (f"{served['mlflow']}/#/experiments/{experiment}/runs/{healthy.info.run_id}/artifacts/"
           "rldk/samples/completions/latest.json?workflowType=machine_learning")
    dom = chromium(url, tmp_path, "--dump-dom", budget_ms=15_000)
    assert "View as table" in dom and 'role="table"' in dom
    for text in ("prompt", "completion", "reward", "advantage", "What is 17 * 3?", "17 * 3 = 51."):
        assert f">{text}<" in dom, text
    screenshot(url, tmp_path, "mlflow_samples_table.png")


def test_mlflow_shows_an_alerts_evidence_as_a_table_beside_the_alert_log(served, tmp_path):
    experiment, runs = mlflow_runs(served)
    sick = runs["grpo-lr-too-high"]
    path = sick.data.tags["rldk.evidence.entropy_collapse"]
    assert path.startswith("rldk/alerts/entropy_collapse_")
    url = (f"{served['mlflow']}/#/experiments/{experiment}/runs/{sick.info.run_id}/artifacts/"
           f"{path}?workflowType=machine_learning")
    dom = chromium(url, tmp_path, "--dump-dom", budget_ms=15_000)
    assert "View as table" in dom and 'role="table"' in dom
    for text in ("row", "completion", "repeated_3grams", "the answer is the answer is the answer is the answer is"):
        assert f">{text}<" in dom, text
    screenshot(url, tmp_path, "mlflow_alert_evidence.png")


def test_tensorboard_lists_the_runs_and_canonical_tags(served, tmp_path):
    base = served["tensorboard"]
    runs = json.loads(urllib.request.urlopen(f"{base}/data/runs", timeout=30).read())
    assert sorted(runs) == ["grpo-healthy", "grpo-lr-too-high"]
    scalars = json.loads(urllib.request.urlopen(f"{base}/data/plugin/scalars/tags", timeout=30).read())
    for run in runs:
        assert CANONICAL <= set(scalars[run])
    texts = json.loads(urllib.request.urlopen(f"{base}/data/plugin/text/tags", timeout=30).read())
    assert {"alerts/kl_spike", "alerts/entropy_collapse"} <= set(texts["grpo-lr-too-high"])
    # the Scalars tab (SVG charts); the Time Series tab draws on a canvas that headless Chromium
    # may leave blank
    screenshot(f"{base}/#scalars", tmp_path, "tensorboard_scalars.png", size="1400,1000")


def test_trackio_dashboard_lists_both_runs(served, tmp_path):
    url = served["trackio"]
    assert url.startswith("http://127.0.0.1:") and url.endswith(f"?project={PROJECT}")
    dom = chromium(url, tmp_path, "--dump-dom", budget_ms=20_000)
    for name in ("grpo-healthy", "grpo-lr-too-high"):
        assert 'class="run-name' in dom and f'title="{name}"' in dom
    screenshot(url, tmp_path, "trackio_runs.png")
