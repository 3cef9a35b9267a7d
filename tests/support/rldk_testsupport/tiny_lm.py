"""A tiny GPT-2-style model and tokenizer (the demo's, built in code) saved once per test session,
so tests can train real TRL trainers on CPU with nothing downloaded.

``tiny_lm_path`` is a folder that ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` read; pass it by path to TRL trainers (they load their reference
model from it). ``tiny_lm_prompts`` are short prompts in the model's corpus.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_lm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer, 64-wide GPT-2 with a 400-token BPE tokenizer, saved to a
    session temp folder (about 1 second to build)."""
    from rldk_track.demo.tiny_lm import save_tiny_lm

    return save_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(scope="session")
def tiny_lm_prompts() -> list[str]:
    """The demo's prompts: the first three words of each corpus sentence, e.g. ``"the quick fox"``."""
    from rldk_track.demo.grpo import prompts

    return prompts()
