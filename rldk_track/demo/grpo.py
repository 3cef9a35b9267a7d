"""The demo's two real TRL GRPO runs on the tiny corpus model: one healthy, one pushed into reward
hacking, each recorded by :class:`~rldk_track.integrations.trl.RLDKCallback` with the default
analyzers, checkpoint health and system metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rldk_track.demo import rewards
from rldk_track.demo.tiny_lm import corpus_lines


@dataclass(frozen=True)
class DemoRun:
    """One GRPO run of the demo: its name (the run name in every tracker), what it shows, its
    reward function and learning rate."""

    name: str
    story: str
    reward: Callable[..., list[float]]
    learning_rate: float
    expected_rules: tuple[str, ...] = field(default=())


HEALTHY = DemoRun(
    name="grpo-healthy",
    story="rewards short, finished corpus-like sentences (learning rate 5e-5)",
    reward=rewards.well_formed,
    learning_rate=5e-5,
)
REWARD_HACKING = DemoRun(
    name="grpo-reward-hacking",
    story="pays for length and nothing else (learning rate 2e-4): completions grow to the length limit",
    reward=rewards.length,
    learning_rate=2e-4,
    expected_rules=("truncation", "kl_drift"),
)
RUNS = (HEALTHY, REWARD_HACKING)

#: The analyzers the demo runs: the defaults (their windows fit the demo's few dozen steps).
ANALYZERS = "default"


def prompts() -> list[str]:
    """The first three words of each corpus sentence: the model completes the sentence."""
    return [" ".join(line.split()[:3]) for line in corpus_lines()]


def grpo_config(output_dir: Path, spec: DemoRun, steps: int, seed: int = 0, device: str = "cpu", **overrides: Any) -> Any:
    """GRPO settings sized for a 130k-parameter model: 16 completions a step (4 prompts x 4),
    up to 48 tokens each, a KL penalty (so a reference model is loaded and ``kl`` logged),
    a log line every step and a checkpoint (weights only) every quarter of the run."""
    from trl import GRPOConfig

    settings: dict[str, Any] = dict(
        output_dir=str(output_dir),
        run_name=spec.name,
        max_steps=steps,
        learning_rate=spec.learning_rate,
        lr_scheduler_type="constant",
        per_device_train_batch_size=16,
        num_generations=4,
        max_completion_length=48,
        beta=0.04,
        logging_steps=1,
        save_strategy="steps",
        save_steps=max(3, steps // 4),
        save_only_model=True,
        report_to=[],
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=device == "cpu",
        seed=seed,
        disable_tqdm=True,
        log_level="error",
    )
    settings.update(overrides)
    return GRPOConfig(**settings)


def grpo_trainer(model_path: Path, spec: DemoRun, args: Any, callbacks: list[Any]) -> Any:
    """A ``GRPOTrainer`` on the saved tiny model (loaded by path, as is its reference model)."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    trainer = GRPOTrainer(
        model=str(model_path),
        reward_funcs=[spec.reward],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts()}),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # the trackers have every value; keep the terminal quiet
    return trainer
