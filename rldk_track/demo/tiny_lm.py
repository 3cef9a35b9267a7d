"""A tiny GPT-2-style causal LM and BPE tokenizer built in code from the corpus shipped with the
package, so the demo and the tests train real TRL trainers with nothing downloaded.

``save_tiny_lm(dir)`` writes a model + tokenizer folder that ``from_pretrained`` (and every TRL
trainer's reference-model loading) reads like a hub checkpoint.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

END_OF_TEXT = "<|endoftext|>"


def corpus_lines() -> list[str]:
    """The demo corpus: short plain sentences, one per line."""
    text = resources.files("rldk_track").joinpath("data/demo_corpus.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def build_tokenizer(vocab_size: int = 400) -> Any:
    """A byte-level BPE tokenizer trained on the corpus, as a ``PreTrainedTokenizerFast`` whose
    end-of-text token doubles as BOS, EOS and padding (as GPT-2's does)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus_lines(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        model_max_length=128,
    )


def build_model(tokenizer: Any, n_layer: int = 2, n_embd: int = 64, n_head: int = 2, seed: int = 0) -> Any:
    """A randomly initialised ``GPT2LMHeadModel`` sized for ``tokenizer`` (about 60k parameters)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=0.0,  # no dropout: the policy's and the reference's log-probs must agree at step 0
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)


def pretrain(model: Any, tokenizer: Any, steps: int, batch_size: int = 32, lr: float = 3e-3, seed: int = 0) -> float:
    """Teach the model the corpus with plain next-token prediction (a few seconds on CPU), so that
    its samples are sentence-like and RL has something to sharpen. Returns the last loss."""
    import torch

    lines = corpus_lines()
    encoded = tokenizer([line + END_OF_TEXT for line in lines], padding=True, return_tensors="pt")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    labels = ids.masked_fill(mask == 0, -100)
    labels[torch.arange(len(lines)), mask.sum(1) - 1] = tokenizer.eos_token_id  # learn to stop
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        batch = torch.randint(len(lines), (batch_size,), generator=generator)
        loss = model(input_ids=ids[batch], attention_mask=mask[batch], labels=labels[batch]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return loss.item()


def save_tiny_lm(directory: str | os.PathLike[str], pretrain_steps: int = 0, seed: int = 0) -> Path:
    """Build the tokenizer and model (optionally pretrained on the corpus) and save both to
    ``directory``; returns it, ready for ``AutoModelForCausalLM.from_pretrained``."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, seed=seed)
    if pretrain_steps:
        pretrain(model, tokenizer, pretrain_steps, seed=seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
