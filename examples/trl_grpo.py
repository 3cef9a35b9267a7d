"""TRL GRPO recorded with ``RLDKCallback``: one line added to a GRPOTrainer.

So that it runs anywhere in seconds (CPU, no download), the model is a two-layer GPT-2 built from
a config and the tokenizer a word-level one built from a word list; swap in your own model name
(``model="Qwen/Qwen2.5-0.5B-Instruct"``) and everything else stays the same. The reward pays for
completions that say "cat"; with ``beta > 0`` GRPO keeps a reference model and logs the KL.

    python examples/trl_grpo.py                                   # records into ./rldk_runs
    python examples/trl_grpo.py --backend mlflow --backend tensorboard --steps 20
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from rldk_track.integrations.trl import RLDKCallback

WORDS = "the a cat dog bird sat ran slept on in under mat log tree and then it was big small red".split()
PROMPTS = ["the cat sat on", "a dog ran under", "the bird slept in", "a small red", "then it was", "the big dog"]
EOS = "<eos>"


def build_tokenizer() -> Any:
    """A word-level tokenizer over :data:`WORDS`, built in code (nothing downloaded)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {EOS: 0, "<unk>": 1, **{word: i + 2 for i, word in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=EOS, unk_token="<unk>")


def build_model(tokenizer: Any, seed: int = 0) -> Any:
    """A randomly initialised two-layer GPT-2 (about 50k parameters), built from a config."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=32, n_layer=2, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(config)


def says_cat(completions: list[str], **kwargs: Any) -> list[float]:
    """The reward: 1 for each completion that contains "cat", else 0."""
    return [1.0 if "cat" in completion.split() else 0.0 for completion in completions]


def train(
    steps: int = 4,
    backend: str | Sequence[str] | None = None,
    run_name: str = "grpo-tiny",
    dir: str | Path | None = None,
    output_dir: str | Path | None = None,
) -> RLDKCallback:
    """Train GRPO for ``steps`` steps with the callback; returns it (``callback.run`` is the run)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    output_dir = Path(output_dir or "grpo-tiny-output")  # the trainer's own folder, as in any TRL script
    # GRPO loads its reference model by name, so save the in-code model where a name finds it.
    model_dir = output_dir / "model"
    tokenizer = build_tokenizer()
    build_model(tokenizer).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    args = GRPOConfig(
        output_dir=str(output_dir), run_name=run_name, max_steps=steps, learning_rate=1e-3,
        per_device_train_batch_size=8, num_generations=4, max_completion_length=6, beta=0.04,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, bf16=False, seed=0,
        disable_tqdm=True,
    )
    callback = RLDKCallback(backend=backend, dir=dir, system_metrics=False, tags={"example": "trl_grpo"})
    trainer = GRPOTrainer(
        model=str(model_dir),
        reward_funcs=[says_cat],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS * 4}),
        processing_class=tokenizer,
        callbacks=[callback],  # <- the one line rldk_track needs
    )
    trainer.train()
    return callback


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", help="jsonl (default), mlflow, wandb, tensorboard...")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--dir", default=None, help="run directory (default ./rldk_runs)")
    args = parser.parse_args(argv)
    callback = train(steps=args.steps, backend=args.backend, dir=args.dir)
    print(f"recorded run {callback.run.id}; look at it with: rldk-track compare {callback.run.dir}")


if __name__ == "__main__":
    main()
