"""The main job: build the tiny model, train the demo's GRPO runs with the TRL callback into the
local trackers, and report what each run's analyzers found."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from rldk_track import backends as backend_registry
from rldk_track import eventlog
from rldk_track.eventlog import read_records
from rldk_track.demo.grpo import ANALYZERS, RUNS, DemoRun, grpo_config, grpo_trainer
from rldk_track.demo.tiny_lm import save_tiny_lm
from rldk_track.records import Alert, CheckpointHealth, Record, RunEnd

PROJECT = "rldk-demo"
#: The trackers the demo records into when they are installed (the event log is always on).
LOCAL_BACKENDS = ("mlflow", "tensorboard")
DEFAULT_STEPS = 40
QUICK_STEPS = 6
#: Next-token pretraining on the corpus before RL, so that samples are sentence-like.
PRETRAIN_STEPS = 40


@dataclass(frozen=True)
class DemoResult:
    """What one demo run left behind, read back from its event log."""

    spec: DemoRun
    run_id: str
    steps: int
    seconds: float
    status: str
    alerts: tuple[Alert, ...]
    checkpoints: tuple[CheckpointHealth, ...]
    delivered: bool

    @property
    def raised(self) -> list[Alert]:
        """Alerts raised (not cleared), in the order they came."""
        return [a for a in self.alerts if a.state == "raised"]

    @property
    def missing_rules(self) -> list[str]:
        """The rules this run is expected to raise that it did not (``reward_hacking`` is
        matched by its signatures too, e.g. ``reward_hacking/length``)."""
        rules = {a.rule for a in self.raised}
        return [rule for rule in self.spec.expected_rules
                if not any(r == rule or r.startswith(rule + "/") for r in rules)]


def usable_backends(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(usable, notes)``: the backends among ``names`` that are installed, and a note for
    each that is not (the demo still runs on the others and the event log)."""
    usable, notes = [], []
    for name in names:
        if name == eventlog.NAME:
            continue
        try:
            backend_registry.resolve(name)
        except ImportError as exc:
            notes.append(f"{name} skipped: {exc}")
            continue
        usable.append(name)
    return usable, notes


def backend_options(run_dir: Path) -> dict[str, dict[str, str]]:
    """Pin MLflow to the sqlite store under ``run_dir`` (even when MLFLOW_TRACKING_URI points
    elsewhere), so the printed ``mlflow ui`` command shows these runs."""
    return {
        "mlflow": {
            "tracking_uri": f"sqlite:///{run_dir / 'mlflow.db'}",
            "artifact_location": (run_dir / "mlartifacts").as_uri(),
        }
    }


def run_demo(
    run_dir: Path,
    steps: int = DEFAULT_STEPS,
    backends: Sequence[str] = LOCAL_BACKENDS,
    runs: Sequence[DemoRun] = RUNS,
    pretrain_steps: int = PRETRAIN_STEPS,
    progress: Callable[[str], None] = print,
) -> list[DemoResult]:
    """Train each of ``runs`` for ``steps`` GRPO steps on a fresh tiny model, recorded under
    ``run_dir``; returns what each run's tracker holds."""
    from rldk_track.integrations.trl import RLDKCallback

    run_dir = run_dir.absolute()
    options = backend_options(run_dir)
    results = []
    with tempfile.TemporaryDirectory(prefix="rldk-demo-") as scratch:
        model_path = save_tiny_lm(Path(scratch) / "tiny-gpt2", pretrain_steps=pretrain_steps)
        for index, spec in enumerate(runs, 1):
            progress(f"[{index}/{len(runs)}] {spec.name}: {spec.story} ...")
            callback = RLDKCallback(
                backend=list(backends) or "jsonl", project=PROJECT, dir=run_dir, analyzers=ANALYZERS, samples=True,
                options={name: options[name] for name in backends if name in options},
            )
            args = grpo_config(Path(scratch) / spec.name, spec, steps)
            trainer = grpo_trainer(model_path, spec, args, [callback])
            start = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - start
            run = callback.run
            assert run is not None
            report = run.flush()  # finished by on_train_end: returns the delivery report
            results.append(read_result(spec, run.dir / "events" / f"{run.id}.jsonl", run.id, trainer.state.global_step,
                                       seconds, report.complete))
    return results


def read_result(spec: DemoRun, event_log: Path, run_id: str, steps: int, seconds: float, delivered: bool) -> DemoResult:
    records: list[Record] = [record for _, record in read_records(event_log)]
    status = next((r.status for r in records if isinstance(r, RunEnd)), "running")
    return DemoResult(
        spec=spec, run_id=run_id, steps=steps, seconds=seconds, status=status,
        alerts=tuple(r for r in records if isinstance(r, Alert)),
        checkpoints=tuple(r for r in records if isinstance(r, CheckpointHealth)),
        delivered=delivered,
    )
