"""Train the benchmark's real TRL runs on the demo's tiny GPT-2 and cache their logs.

Each run is a real ``GRPOTrainer`` / ``RLOOTrainer`` / ``DPOTrainer`` / ``SFTTrainer`` on the
2-layer corpus model (pretrained 40 steps, as the demo does), logging every step
(``logging_steps=1``). A recording callback keeps exactly the ``logs`` dict TRL hands to its
callbacks, with TRL's own key names. Faults that the training dynamics can produce are built into
the run (a reward function that changes behaviour at a known optimizer step, a learning rate
multiplied at a known step); their step is the ground truth. Sparser logging rates are derived
later from these per-step logs exactly as TRL averages them (see ``corpus.py``).

Usage (a few minutes on 2 shared cores; each run is skipped when its file exists)::

    nice -n 19 python benchmarks/insight/generate.py [--only NAME ...] [--force]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import RUNS_DIR  # noqa: E402

from rldk_track.demo import rewards as demo_rewards  # noqa: E402
from rldk_track.demo.grpo import prompts  # noqa: E402
from rldk_track.demo.tiny_lm import corpus_lines, save_tiny_lm  # noqa: E402

STEPS = 240
CAP = 32  # max_completion_length of the generated runs


# -- reward functions (TRL signature); the faulty ones change at a known optimizer step ------
def _step(kwargs: dict[str, Any]) -> int:
    return kwargs["trainer_state"].global_step  # optimizer steps done before this generation


def well_formed(completions: list[str], **kwargs: Any) -> list[float]:
    return demo_rewards.well_formed(completions)


def brevity(completions: list[str], **kwargs: Any) -> list[float]:
    """A second, honest component: 1 for 3-10 words, less the further from that."""
    out = []
    for text in completions:
        n = len(text.split())
        out.append(1.0 if 3 <= n <= 10 else max(0.0, 1 - 0.15 * min(abs(n - 3), abs(n - 10))))
    return out


def changed_at(step: int, after: Callable[[list[float], list[str]], list[float]], name: str) -> Callable[..., list[float]]:
    """``well_formed`` until optimizer step ``step``, then ``after(scores, completions)``."""
    def reward(completions: list[str], **kwargs: Any) -> list[float]:
        scores = demo_rewards.well_formed(completions)
        return after(scores, completions) if _step(kwargs) >= step else scores
    reward.__name__ = name
    return reward


def length_paying(completions: list[str], **kwargs: Any) -> list[float]:
    return demo_rewards.length(completions)


def lr_multiplier(step: int, factor: float) -> Any:
    """A callback that multiplies the learning rate by ``factor`` from optimizer step ``step`` (a
    learning-rate bug: a schedule or a unit mistake)."""
    from transformers import TrainerCallback

    class LRBlowUp(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == step:
                scheduler, optimizer = kwargs["lr_scheduler"], kwargs["optimizer"]
                scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
                for group in optimizer.param_groups:
                    group["lr"] *= factor

    return LRBlowUp()


class Recorder:
    """Keeps each ``on_log`` dict TRL hands its callbacks (the training logs, not the end summary)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Recorder(TrainerCallback):
            def __init__(self):
                self.rows: list[dict[str, Any]] = []

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "train_runtime" not in logs:
                    self.rows.append({"step": state.global_step, **{k: v for k, v in logs.items()
                                                                     if isinstance(v, (int, float))}})

        return _Recorder()


# -- the runs ---------------------------------------------------------------------------------
# name -> (trainer kind, settings, labels). ``fault_step`` is the optimizer step the fault starts.
SPECS: dict[str, dict[str, Any]] = {}


def spec(name: str, trainer: str, *, faults: list[dict[str, Any]] | None = None, **settings: Any) -> None:
    SPECS[name] = {"trainer": trainer, "settings": settings, "faults": faults or []}


for seed in (0, 1, 2):
    spec(f"grpo_healthy_s{seed}", "grpo", seed=seed, rewards=["well_formed"], learning_rate=3e-5, beta=0.04)
spec("grpo_healthy_nokl_s0", "grpo", seed=0, rewards=["well_formed"], learning_rate=3e-5, beta=0.0)
spec("grpo_healthy_two_rewards_s0", "grpo", seed=0, rewards=["well_formed", "brevity"], learning_rate=3e-5, beta=0.04)
spec("grpo_healthy_two_rewards_s1", "grpo", seed=1, rewards=["well_formed", "brevity"], learning_rate=2e-5, beta=0.04)
spec("grpo_healthy_g8_s3", "grpo", seed=3, rewards=["well_formed"], learning_rate=2e-5, beta=0.04, num_generations=8)
spec("grpo_healthy_hot_s4", "grpo", seed=4, rewards=["well_formed"], learning_rate=3e-5, beta=0.04, temperature=1.2)
spec("rloo_healthy_s0", "rloo", seed=0, rewards=["well_formed"], learning_rate=3e-5, beta=0.04)
spec("rloo_healthy_s1", "rloo", seed=1, rewards=["well_formed"], learning_rate=2e-5, beta=0.04)
spec("dpo_healthy_s0", "dpo", seed=0, learning_rate=5e-5)
spec("sft_healthy_s0", "sft", seed=0, learning_rate=1e-3)

# Faults produced by the real trainer (ground truth: the step the reward/lr changes).
K = 100
spec("grpo_sign_flip_s0", "grpo", seed=0, rewards=["sign_flip"], learning_rate=3e-5, beta=0.04,
     faults=[{"cls": "reward_sign_flip", "step": K, "budget": "abrupt"}])
spec("grpo_scale_1000_s1", "grpo", seed=1, rewards=["scale_1000"], learning_rate=3e-5, beta=0.04,
     faults=[{"cls": "reward_scale", "step": K, "budget": "abrupt"}])
spec("grpo_constant_reward_s2", "grpo", seed=2, rewards=["constant"], learning_rate=3e-5, beta=0.04,
     faults=[{"cls": "reward_constant", "step": K, "budget": "level"}])
spec("grpo_length_from_start_s0", "grpo", seed=0, rewards=["length_paying"], learning_rate=2e-4, beta=0.04,
     faults=[{"cls": "length_hacking_early", "step": 0, "budget": "slow"}])
spec("grpo_length_mid_run_s1", "grpo", seed=1, rewards=["length_mid"], learning_rate=2e-4, beta=0.04,
     faults=[{"cls": "length_hacking_mid", "step": K, "budget": "slow"}])
spec("grpo_lr_blowup_s2", "grpo", seed=2, rewards=["well_formed"], learning_rate=3e-5, beta=0.04,
     lr_blowup=(K, 300.0), faults=[{"cls": "lr_blowup", "step": K, "budget": "abrupt"}])

REWARDS: dict[str, Callable[..., list[float]]] = {
    "well_formed": well_formed,
    "brevity": brevity,
    "length_paying": length_paying,
    "sign_flip": changed_at(K, lambda s, c: [-x for x in s], "well_formed"),
    "scale_1000": changed_at(K, lambda s, c: [1000 * x for x in s], "well_formed"),
    "constant": changed_at(K, lambda s, c: [0.5 for _ in s], "well_formed"),
    "length_mid": changed_at(K, lambda s, c: demo_rewards.length(c), "well_formed"),
}


def train(name: str, model_path: Path, scratch: Path) -> list[dict[str, Any]]:
    from datasets import Dataset
    from transformers import PrinterCallback

    s = dict(SPECS[name]["settings"])
    kind = SPECS[name]["trainer"]
    seed = s.pop("seed")
    lr = s.pop("learning_rate")
    recorder = Recorder()
    callbacks = [recorder]
    if "lr_blowup" in s:
        callbacks.append(lr_multiplier(*s.pop("lr_blowup")))
    common = dict(output_dir=str(scratch / name), max_steps=STEPS, learning_rate=lr, lr_scheduler_type="constant",
                  logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, seed=seed, disable_tqdm=True,
                  log_level="error", bf16=False)
    if kind in ("grpo", "rloo"):
        from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

        config_cls, trainer_cls = (GRPOConfig, GRPOTrainer) if kind == "grpo" else (RLOOConfig, RLOOTrainer)
        funcs = [REWARDS[r] for r in s.pop("rewards")]
        g = s.pop("num_generations", 4)
        args = config_cls(**common, per_device_train_batch_size=4 * g, num_generations=g,
                          max_completion_length=CAP, **s)
        trainer = trainer_cls(model=str(model_path), reward_funcs=funcs, args=args,
                              train_dataset=Dataset.from_dict({"prompt": prompts()}), callbacks=callbacks)
    elif kind == "dpo":
        from trl import DPOConfig, DPOTrainer

        lines = corpus_lines()
        data = Dataset.from_dict({
            "prompt": [" ".join(x.split()[:3]) for x in lines],
            "chosen": [" " + " ".join(x.split()[3:]) for x in lines],
            "rejected": [" " + " ".join(reversed(x.split()[3:])) for x in lines],
        })
        args = DPOConfig(**common, per_device_train_batch_size=8, max_length=64, **s)
        trainer = DPOTrainer(model=str(model_path), args=args, train_dataset=data, callbacks=callbacks)
    else:
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**common, per_device_train_batch_size=8, max_length=64, **s)
        trainer = SFTTrainer(model=str(model_path), args=args, train_dataset=Dataset.from_dict({"text": corpus_lines()}),
                             callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return recorder.rows


def save(name: str, rows: list[dict[str, Any]]) -> Path:
    """One gzipped JSON per run: its spec and the per-step logs as columns (6 significant digits)."""
    keys = sorted({k for row in rows for k in row if k != "step"})
    columns = {k: [_compact(row.get(k)) for row in rows] for k in keys}
    doc = {"name": name, "trainer": SPECS[name]["trainer"], "settings": SPECS[name]["settings"],
           "faults": SPECS[name]["faults"], "logging_steps": 1, "steps": [row["step"] for row in rows],
           "columns": columns}
    path = RUNS_DIR / f"{name}.json.gz"
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
        json.dump(doc, f, separators=(",", ":"))
    return path


def _compact(value: Any) -> Any:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf": JSON has no literal for them
    return float(f"{value:.6g}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only these specs")
    parser.add_argument("--force", action="store_true", help="retrain runs whose file exists")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    names = args.only or list(SPECS)
    with tempfile.TemporaryDirectory() as scratch:
        model_path = save_tiny_lm(Path(scratch) / "model", pretrain_steps=40)
        for name in names:
            if (RUNS_DIR / f"{name}.json.gz").exists() and not args.force:
                continue
            start = time.perf_counter()
            rows = train(name, model_path, Path(scratch))
            path = save(name, rows)
            print(f"{name}: {len(rows)} logged steps in {time.perf_counter() - start:.0f} s -> {path.name} "
                  f"({path.stat().st_size // 1024} KB)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
