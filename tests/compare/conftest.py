"""Runs written by the real trackers for the reader, CLI and browser tests."""

from __future__ import annotations

import math
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import pytest

import rldk_track
from rldk_track.records import Alert

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

LONG_TAG = "x" * 100  # longer than a W&B tag may be


@dataclass
class LoggedRun:
    dir: Path
    project: str
    name: str
    run_id: str
    tracking_uri: str | None


def reference_values(step: int) -> dict[str, float]:
    """The points of one step: awkward names, a NaN, a value near float32's limit."""
    return {
        "reward/mean": 0.5 + 0.01 * step + (0.2 if step % 7 == 0 else 0.0),
        "kl/mean": 0.02 + 0.001 * step,
        "weird name!": float(step) * 1.5,  # MLflow has to rename it
        "_private": 1.0 / (step + 1),  # W&B drops the leading underscore
        "big": 1e30 if step == 3 else 1.0,
        "loss/total": math.nan if step == 20 else 2.0 - 0.01 * step,
    }


def reference_samples(step: int) -> list[dict[str, object]]:
    """The sample rows of one sampled step: text a markdown table must escape, no reward, ints."""
    return [
        {"prompt": f"Q{step}: 2+2?", "completion": "4 | four\nsure ✓", "reward": 1.0, "length": 9},
        {"prompt": f"Q{step}: 3+3?", "completion": "", "reward": None, "length": 0},
    ]


SAMPLED_STEPS = (10, 30)


def log_reference_run(dir: Path, backends: Sequence[str], tracking_uri: str | None = None, name: str = "reference",
                      project: str | None = None, steps: int = 40) -> LoggedRun:
    """One run with everything a reader must carry back, written through ``backends``."""
    project = project or f"cmp-{uuid.uuid4().hex[:8]}"
    run = rldk_track.init(
        backend=list(backends), project=project, run_name=name, dir=dir,
        mlflow={"tracking_uri": tracking_uri} if tracking_uri and "mlflow" in backends else None,
        config={"lr": 3e-6, "model": {"layers": 2}, "seeds": [1, 2]},
        tags={"team": "rl", "long": LONG_TAG},
    )
    run.log_params({"model": {"name": "tiny"}})  # params logged again extend the config
    for step in range(steps):
        run.log(reference_values(step), step=step)
        if step in SAMPLED_STEPS:
            run.log_samples(reference_samples(step), step=step, name="completions")
        if step == 12:
            run.alert("kl_spike", "KL jumped", severity="warning", step=step, metric="kl/mean", value=0.9, threshold=0.1)
    run.emit(Alert(-1, time.time(), 15, "kl_spike", "warning", "KL back", "kl/mean", 0.03, 0.1, None, "cleared"))
    run.log({"eval/reward": 0.7}, step=steps - 5)  # a step that goes back
    run.log_summary({"note": "done", "train_runtime": 812.5})  # 812.5: exact in TensorBoard's float32
    report = run.finish(timeout=120)
    assert report.complete, report.describe()
    return LoggedRun(dir, project, name, run.id, tracking_uri)


@pytest.fixture
def reference() -> SimpleNamespace:
    """The reference run for tests: ``.log(dir, backends, ...)``, ``.values(step)``, ``.long_tag``."""
    return SimpleNamespace(log=log_reference_run, values=reference_values, long_tag=LONG_TAG,
                           samples=reference_samples, sampled_steps=SAMPLED_STEPS)


@pytest.fixture(scope="session")
def all_backends_run(tmp_path_factory: pytest.TempPathFactory, mlflow_server) -> LoggedRun:
    """The reference run recorded into every tracker at once (MLflow: the shared test server)."""
    return log_reference_run(tmp_path_factory.mktemp("all_backends"), ["mlflow", "wandb", "tensorboard", "trackio"],
                             tracking_uri=mlflow_server.uri)
