"""``rldk-track demo``: the main job. Two real TRL GRPO runs of a tiny GPT-2 on CPU (one healthy,
one reward hacking), recorded into the local trackers, then what the analyzers found and how to
open the runs."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rldk_track.cli.common import backend_name, evidence_line, fail
from rldk_track.run import parse_backends
from rldk_track.vocab.mlflow import ui_url

if TYPE_CHECKING:
    from rldk_track.demo.job import DemoResult


def register(sub: argparse._SubParsersAction) -> None:
    from rldk_track.demo.job import DEFAULT_STEPS, LOCAL_BACKENDS, QUICK_STEPS

    p = sub.add_parser(
        "demo",
        help="train two tiny GRPO runs (healthy and reward hacking) and show what rldk_track records",
        description="Builds a tiny GPT-2 and BPE tokenizer in code (nothing is downloaded), trains two real "
        "TRL GRPO runs on CPU with RLDKCallback, and prints the alerts each run raised and the commands "
        "that open the runs in MLflow and TensorBoard.",
    )
    p.add_argument("--dir", type=Path, default=Path("rldk_runs"), help="run directory (default ./rldk_runs)")
    p.add_argument("--steps", type=int, help=f"GRPO steps per run (default {DEFAULT_STEPS}; {QUICK_STEPS} with --quick)")
    p.add_argument("--backend", action="append", metavar="NAME", type=backend_name,
                   help=f"tracker to record into, repeatable or comma-separated (default: {', '.join(LOCAL_BACKENDS)}; "
                   "the local event log is always written)")
    p.add_argument("--quick", action="store_true", help="a few steps on an untrained model: checks that everything works")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rldk_track.demo.job import DEFAULT_STEPS, LOCAL_BACKENDS, PRETRAIN_STEPS, QUICK_STEPS, run_demo, usable_backends

    steps = args.steps or (QUICK_STEPS if args.quick else DEFAULT_STEPS)
    if steps < 1:
        return fail(ValueError("--steps must be at least 1"))
    requested = parse_backends(",".join(args.backend)) if args.backend else list(LOCAL_BACKENDS)
    backends, notes = usable_backends(requested)
    for note in notes:
        print(note)
    _quiet_libraries()
    print(f"rldk-track demo: {steps} GRPO steps per run of a tiny GPT-2 (2 layers, 64 wide, built in code) on CPU, "
          f"recorded into {', '.join(['jsonl', *backends])} under {_shown(args.dir)}")
    results = run_demo(args.dir, steps=steps, backends=backends, pretrain_steps=0 if args.quick else PRETRAIN_STEPS)
    print()
    for result in results:
        concerns = [a for a in result.raised if a.severity != "info"]
        reports = sorted({a.rule for a in result.raised if a.severity == "info"})
        print(f"{result.spec.name}  (run {result.run_id}, {result.steps} steps in {result.seconds:.1f} s, {result.status})")
        if not concerns:
            print("    no warnings")
        for alert in concerns:
            print(f"    step {alert.step:>4}  {alert.severity:<8}  {alert.rule:<22} {alert.message}")
            if alert.evidence is not None:
                print(f"               {evidence_line(alert.evidence)}")
        if reports:
            print(f"    end-of-run reports in the trackers: {', '.join(reports)}")
        if result.checkpoints:
            scores = ", ".join(f"step {h.step} {h.score:.2f}" for h in result.checkpoints)
            print(f"    checkpoint health: {scores}")
        for health in result.checkpoints:
            for issue in health.issues:
                print(f"    checkpoint step {health.step}: {issue}")
        missing = result.missing_rules
        if missing and not args.quick:
            print(f"    (expected {', '.join(missing)} as well; the run may need more --steps)")
        if not result.delivered:
            print(f"    some records have not reached every tracker yet: {script('rldk-track')} sync {_shown(args.dir)}")
    print()
    for line in open_commands(args.dir, backends, evidence_rules(results)):
        print(line)
    return 0 if all(r.delivered for r in results) else 1


def evidence_rules(results: Sequence[DemoResult]) -> list[str]:
    """The rules whose raised alerts carry evidence rows, in the order they came; a rule with a
    subject (``reward_hacking/length``) by its base name, which ``samples --alert`` matches."""
    rules = [a.rule.split("/")[0] for r in results for a in r.raised if a.evidence is not None]
    return list(dict.fromkeys(rules))


def open_commands(run_dir: Path, backends: list[str], evidence: Sequence[str] = ()) -> list[str]:
    """What the demo prints last: commands that open its runs, runnable as printed in a fresh
    shell (the scripts by their path when the environment's bin directory is not on PATH; the
    store by an absolute path, so the working directory does not matter). ``evidence``: rules
    whose alerts carry sample rows (:func:`evidence_rules`), each shown by ``samples --alert``."""
    run_dir = run_dir.absolute()
    lines = []
    if evidence:
        lines.append("The completions behind the alerts (evidence rows), and each run's highest-reward completions:")
        lines += [f"    {script('rldk-track')} samples {run_dir} --alert {rule}" for rule in evidence]
        lines.append(f"    {script('rldk-track')} samples {run_dir} --sort reward --limit 3")
    if {"mlflow", "tensorboard"} & set(backends):
        trackers = " and ".join(n for n in ("mlflow", "tensorboard") if n in backends)
        lines += [f"Open the runs in {trackers} (http://127.0.0.1:5000, :6006; Ctrl-C stops):",
                  f"    {script('rldk-track')} ui --dir {run_dir}"]
    lines += ["List and compare them:",
              f"    {script('rldk-track')} list {run_dir}",
              f"    {script('rldk-track')} compare {run_dir} --metric reward/mean --metric kl/mean"]
    if {"mlflow", "tensorboard"} & set(backends):
        lines.append("Or start the trackers' own UIs:")
    if "mlflow" in backends:
        lines += [f"    {script('mlflow')} ui --backend-store-uri sqlite:///{run_dir / 'mlflow.db'}",
                  f"  (MLflow's training view of the runs: {ui_url('http://127.0.0.1:5000')})"]
    if "tensorboard" in backends:
        lines.append(f"    {script('tensorboard')} --logdir {run_dir / 'tensorboard'}")
    lines.append(f"Event logs (JSONL, one record a line): {run_dir / 'events'}")
    return lines


def script(name: str) -> str:
    """How to call this environment's console script ``name`` from a fresh shell: the bare name
    when PATH finds this very script, else its path (relative to the working directory when it
    lies under it, e.g. ``.venv/bin/rldk-track``)."""
    import shutil
    import sys

    here = Path(sys.executable).parent / name
    found = shutil.which(name)
    if found and Path(found).resolve() == here.resolve():
        return name
    if not here.exists():
        return name
    return _shown(here)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it, else absolute."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def _quiet_libraries() -> None:
    """Keep the demo's output to what it shows: no progress bars or library warnings."""
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
