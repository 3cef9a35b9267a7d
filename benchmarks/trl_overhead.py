"""What tracking costs a real TRL GRPO run: rldk_track's callback next to transformers' own trackers.

The demo's healthy GRPO run (tiny GPT-2 built in code, 16 completions of up to 48 tokens a step,
a log line every step) is trained in ONE process by three contenders, interleaved run by run
(the order rotates each repetition) so machine noise hits them alike:

- ``none``: no tracking (``report_to=[]``);
- ``transformers``: ``report_to=["mlflow", "tensorboard"]``, transformers' own MLflowCallback
  (asynchronous logging) and TensorBoardCallback;
- ``rldk``: ``RLDKCallback(backend=["mlflow", "tensorboard"])`` with the default analyzers and
  system metrics (every 10 s), plus checkpoint health when ``--save-steps`` is given.

Both contenders' trackers write to the same local MLflow server (started through
``backends/mlflow/serve_local.sh``) and their TensorBoard files to the same temporary folder.

Reported per contender, over every step after the first ``--warmup`` of each run:

- step time: wall time between consecutive ``on_step_begin`` events (the step's compute plus
  everything the callbacks do at its end; the last step is left out), median and mean, and the
  ratio to ``none``;
- tracking time on the training thread: time spent inside the tracking callbacks' event methods
  (MLflowCallback + TensorBoardCallback, or RLDKCallback), per step, p50 / p99;
- CPU per step: CPU time of this process (every thread: training, tracking threads, tracker
  clients) between the same step boundaries, and of the MLflow server process over the run
  divided by its steps. Unlike wall time, this barely moves when other programs load the machine;
- setup and teardown: time inside ``on_train_begin`` and ``on_train_end`` (run creation, params;
  waiting for delivery at the end).

Ratios to ``none`` are computed within each repetition (a load spike from another program hits
one repetition) and the median over repetitions is reported. Compute is the same for every
contender (same seed, same model, same data), so the differences are what tracking adds.

    python benchmarks/trl_overhead.py [--device cpu|cuda] [--steps 30] [--repeats 5] [--warmup 3]
                                      [--save-steps 0] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from mlflow_server import start_mlflow_server, stop_mlflow_server  # benchmarks/mlflow_server.py

CONTENDERS = ("none", "transformers", "rldk")
PROJECT = "trl-overhead"


class Timings:
    """Per-run measurements: step boundaries and time inside the tracking callbacks."""

    def __init__(self) -> None:
        self.step_starts: list[float] = []
        self.step_cpu: list[float] = []
        self.tracking_by_step: dict[int, float] = {}
        self.setup = 0.0
        self.teardown = 0.0
        self.server_cpu = 0.0


def step_clock(timings: Timings) -> Any:
    """A callback that stamps every ``on_step_begin``: step k lasts from its stamp to step k+1's
    (the last step, which also holds the end-of-training work, is not measured)."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            timings.step_starts.append(time.perf_counter())
            timings.step_cpu.append(time.process_time())

    return StepClock()


def time_callback(callback: Any, timings: Timings, state: Callable[[], Any]) -> None:
    """Wrap each ``on_*`` event method of ``callback`` to add its duration to ``timings``."""
    for name in [n for n in dir(callback) if n.startswith("on_")]:
        method = getattr(callback, name)

        def timed(*args: Any, _method: Callable[..., Any] = method, _name: str = name, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                if _name in ("on_train_begin", "on_init_end"):
                    timings.setup += elapsed
                elif _name == "on_train_end":
                    timings.teardown += elapsed
                else:
                    step = state().global_step
                    timings.tracking_by_step[step] = timings.tracking_by_step.get(step, 0.0) + elapsed

        setattr(callback, name, timed)


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by process ``pid`` and its descendants (the MLflow server's workers)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def train_once(contender: str, model_path: Path, work: Path, options: argparse.Namespace, index: int,
               server_pid: int) -> Timings:
    from transformers.integrations import MLflowCallback, TensorBoardCallback

    from rldk_track.demo.grpo import HEALTHY, grpo_config, grpo_trainer
    from rldk_track.integrations.trl import RLDKCallback

    timings = Timings()
    out = work / f"{contender}-{index}"
    saving = dict(save_strategy="steps", save_steps=options.save_steps) if options.save_steps else dict(save_strategy="no")
    report_to = ["mlflow", "tensorboard"] if contender == "transformers" else []
    args = grpo_config(out, HEALTHY, options.steps, seed=0, device=options.device, report_to=report_to,
                       run_name=f"{contender}-{index}", **saving)
    callbacks: list[Any] = [step_clock(timings)]
    rldk = None
    if contender == "rldk":
        rldk = RLDKCallback(backend=["mlflow", "tensorboard"], project=PROJECT, dir=work / "rldk",
                            checkpoint_health=bool(options.save_steps))
        callbacks.append(rldk)
    trainer = grpo_trainer(model_path, HEALTHY, args, callbacks)
    tracked = [cb for cb in trainer.callback_handler.callbacks
               if isinstance(cb, (MLflowCallback, TensorBoardCallback, RLDKCallback))]
    expected = {"none": 0, "transformers": 2, "rldk": 1}[contender]
    assert len(tracked) == expected, f"{contender}: found tracking callbacks {tracked}"
    for callback in tracked:
        time_callback(callback, timings, lambda: trainer.state)
    server_before = cpu_seconds(server_pid)
    trainer.train()
    if rldk is not None and rldk.run is not None and not rldk.run.flush().complete:
        print(f"  warning: {contender}-{index} finished with records pending", file=sys.stderr)
    timings.server_cpu = cpu_seconds(server_pid) - server_before
    return timings


def step_durations(timings: Timings, options: argparse.Namespace) -> list[float]:
    """Wall time of the measured steps (after the warm-up, without the last step)."""
    return [b - a for a, b in zip(timings.step_starts, timings.step_starts[1:])][options.warmup:]


def step_cpu(timings: Timings, options: argparse.Namespace) -> list[float]:
    """This process's CPU time during each measured step."""
    return [b - a for a, b in zip(timings.step_cpu, timings.step_cpu[1:])][options.warmup:]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=30, help="GRPO steps per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per contender (interleaved)")
    parser.add_argument("--warmup", type=int, default=3, help="steps of each run left out of the statistics")
    parser.add_argument("--save-steps", type=int, default=0, help="save a checkpoint every N steps (0: never)")
    parser.add_argument("--pretrain-steps", type=int, default=40, help="corpus pretraining of the tiny model")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: torch's choice); fewer than the cores leaves room for the "
                        "tracking threads and the MLflow server, which makes CPU runs on a busy machine steadier")
    options = parser.parse_args()
    if options.steps <= options.warmup + 1:
        parser.error("--steps must exceed --warmup + 1")

    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
    import datasets
    import torch
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    if options.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    if options.threads:
        torch.set_num_threads(options.threads)

    from rldk_track.demo.tiny_lm import save_tiny_lm

    work = Path(tempfile.mkdtemp(prefix="rldk-trl-bench-"))
    server, uri = start_mlflow_server(work)
    os.environ.update(MLFLOW_TRACKING_URI=uri, MLFLOW_EXPERIMENT_NAME=PROJECT, MLFLOW_FLATTEN_PARAMS="1")
    try:
        model_path = save_tiny_lm(work / "tiny-gpt2", pretrain_steps=options.pretrain_steps)
        device = torch.cuda.get_device_name(0) if options.device == "cuda" else platform.processor() or platform.machine()
        print(f"GRPO on the demo's tiny GPT-2, device {options.device} ({device}), torch threads "
              f"{torch.get_num_threads()}, {options.steps} steps x {options.repeats} runs per contender, "
              f"first {options.warmup} steps of each run left out, checkpoints "
              f"{'every %d steps' % options.save_steps if options.save_steps else 'off'}; MLflow server {uri}")
        train_once("none", model_path, work, options, -1, server.pid)  # warm caches and lazy imports, not measured
        results: dict[str, list[Timings]] = {c: [] for c in CONTENDERS}
        for repeat in range(options.repeats):
            order = CONTENDERS[repeat % 3:] + CONTENDERS[: repeat % 3]
            medians = []
            for contender in order:
                timings = train_once(contender, model_path, work, options, repeat, server.pid)
                results[contender].append(timings)
                medians.append(f"{contender} {statistics.median(step_durations(timings, options)) * 1e3:.0f} ms")
            print(f"  repetition {repeat + 1}/{options.repeats}, median step: {', '.join(medians)}", flush=True)
        report(results, options)
    finally:
        stop_mlflow_server(server)


def report(results: dict[str, list[Timings]], options: argparse.Namespace) -> None:
    def per_run(contender: str, measure: Callable[[Timings], float]) -> list[float]:
        return [measure(t) for t in results[contender]]

    wall = lambda t: statistics.median(step_durations(t, options))  # noqa: E731
    cpu = lambda t: statistics.median(step_cpu(t, options))  # noqa: E731
    server = lambda t: t.server_cpu / options.steps  # noqa: E731
    print()
    print(f"{'contender':<13} {'wall ms/step':>12} {'ratio':>6} {'CPU ms/step':>11} {'ratio':>6} "
          f"{'server CPU ms/step':>18} {'on-thread us/step p50':>21} {'p99':>7} {'setup s':>7} {'teardown s':>10}")
    for contender, runs in results.items():
        tracking: list[float] = []
        for t in runs:  # events at global_step s: the end of step s and the start of step s + 1
            tracking += [t.tracking_by_step.get(s, 0.0) for s in range(options.warmup + 1, options.steps)]
        ratios = {
            name: statistics.median(a / b for a, b in zip(per_run(contender, f), per_run("none", f)))
            for name, f in (("wall", wall), ("cpu", cpu))
        }
        print(f"{contender:<13} {statistics.median(per_run(contender, wall)) * 1e3:>12.1f} {ratios['wall']:>6.2f} "
              f"{statistics.median(per_run(contender, cpu)) * 1e3:>11.1f} {ratios['cpu']:>6.2f} "
              f"{statistics.median(per_run(contender, server)) * 1e3:>18.1f} "
              f"{percentile(tracking, 0.5) * 1e6:>21.0f} {percentile(tracking, 0.99) * 1e6:>7.0f} "
              f"{statistics.median(per_run(contender, lambda t: t.setup)):>7.2f} "
              f"{statistics.median(per_run(contender, lambda t: t.teardown)):>10.2f}")
    print("(wall and CPU: medians over runs of each run's median step; ratios: median over repetitions of the "
          "ratio to 'none' in that repetition)")


if __name__ == "__main__":
    main()
