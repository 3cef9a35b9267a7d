"""Training-thread cost of one OpenRLHF ``save_logs_and_checkpoints`` call, with and without rldk_track.

OpenRLHF's real ``BasePPOTrainer`` (PPO controller) and ``SFTTrainer`` methods, called in ONE
process with OpenRLHF's real ``logs_dict`` shapes, interleaved in blocks so machine noise hits
every contender alike:

- ``plain``: OpenRLHF's method with no logger (it only checks its cadence);
- ``openrlhf-tb``: OpenRLHF's own TensorBoard logger (``--logger.tensorboard_dir``), what users
  turn on today;
- ``rldk``: the method as ``install()`` wraps it (local event log, default analyzers, which run on
  the log thread), no OpenRLHF logger.

``plain`` and ``openrlhf-tb`` call OpenRLHF's original function, which the wrapper keeps; the run
is started by a warm-up call that is not timed.

Reported: p50 / p99 of the time spent inside the call (µs) and the extra time over ``plain``.
No checkpoint is saved (``--ckpt.save_steps`` is out of reach), so this is the logging path only.

    python benchmarks/openrlhf_overhead.py [--steps 2000] [--block 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="calls per contender")
    parser.add_argument("--block", type=int, default=100, help="calls per contender before switching")
    options = parser.parse_args()

    from rldk_testsupport import openrlhf_minimal as om
    from rldk_testsupport.openrlhf_stubs import import_openrlhf_trainers

    modules = import_openrlhf_trainers()
    from rldk_track.integrations import openrlhf as integration

    work = Path(tempfile.mkdtemp(prefix="rldk-openrlhf-bench-"))
    inf = float("inf")

    def ppo(tb: bool) -> Any:
        args = om.openrlhf_args(ckpt__path=str(work / "ckpt"), ckpt__save_steps=inf,
                                logger__tensorboard_dir=str(work / "tb") if tb else None)
        return om.ppo_trainer(args)

    def sft(tb: bool) -> Any:
        args = om.openrlhf_args(ckpt__save_steps=inf, eval__steps=inf,
                                logger__tensorboard_dir=str(work / "tb_sft") if tb else None)
        trainer = object.__new__(modules["openrlhf.trainer.sft_trainer"].SFTTrainer)
        writer = None
        if tb:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(work / "tb_sft"))
        trainer.__dict__.update(strategy=om.TorchStrategy(args), _wandb=None, _tensorboard=writer,
                                eval_dataloader=None, disable_ds_ckpt=True, save_hf_ckpt=False)
        return trainer, args

    sft_logs = {"gpt_loss": 2.31, "lr": 1e-5, "grad_norm": 0.9, "loss_mean": 2.3}
    integration.install(dir=str(work / "runs"), checkpoint_health=False)  # default analyzers
    base_ppo = modules["openrlhf.trainer.ppo_trainer"].BasePPOTrainer
    sft_cls = modules["openrlhf.trainer.sft_trainer"].SFTTrainer
    results: dict[str, dict[str, list[float]]] = {}
    for kind in ("ppo", "sft"):
        contenders: dict[str, Callable[[int], None]] = {}
        for name in ("plain", "openrlhf-tb", "rldk"):
            if kind == "ppo":
                trainer = ppo(tb=name == "openrlhf-tb")
                method = base_ppo.save_logs_and_checkpoints
                method = method if name == "rldk" else method.__rldk_original__
                contenders[name] = lambda step, t=trainer, m=method: m(t, step, om.ppo_logs(step))
            else:
                trainer, args = sft(tb=name == "openrlhf-tb")
                method = sft_cls.save_logs_and_checkpoints
                method = method if name == "rldk" else method.__rldk_original__
                contenders[name] = lambda step, t=trainer, a=args, m=method: m(
                    t, a, step, None, dict(sft_logs), {"consumed_samples": step})
        contenders["rldk"](1)  # starts the run (step 0 would be a save step: global_step % inf == 0)
        timings: dict[str, list[float]] = {name: [] for name in contenders}
        for start in range(2, options.steps + 2, options.block):
            for name, call in contenders.items():
                for step in range(start, min(start + options.block, options.steps + 2)):
                    t0 = time.perf_counter_ns()
                    call(step)
                    timings[name].append((time.perf_counter_ns() - t0) / 1000.0)
        results[kind] = timings
        integration.uninstall()
        integration.install(dir=str(work / "runs"), checkpoint_health=False)
    integration.uninstall()

    print(f"{options.steps} calls per contender, blocks of {options.block}, interleaved (µs on the training thread)")
    for kind, timings in results.items():
        base = statistics.median(timings["plain"])
        print(f"\n{kind.upper()} save_logs_and_checkpoints")
        print(f"  {'contender':<16} {'p50':>9} {'p99':>9} {'extra p50':>10}")
        for name, values in timings.items():
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            print(f"  {name:<16} {p50:>9.1f} {p99:>9.1f} {p50 - base:>10.1f}")


if __name__ == "__main__":
    main()
