"""Rule-based rewards for the demo's GRPO runs (TRL reward-function signature: completions in,
one float each out). One rewards what the corpus looks like; the other pays for length and
nothing else, the classic reward an RL policy learns to game."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from rldk_track.demo.tiny_lm import corpus_lines


@lru_cache(maxsize=1)
def _corpus_words() -> frozenset[str]:
    return frozenset(word for line in corpus_lines() for word in line.split())


def well_formed(completions: list[str], **_: Any) -> list[float]:
    """Half for the share of words the corpus uses, half for ending the sentence with " ."
    after 2 to 12 words: in [0, 1], highest for a short, finished corpus-like sentence."""
    words = _corpus_words()
    scores = []
    for text in completions:
        tokens = text.split()
        if not tokens:
            scores.append(0.0)
            continue
        known = sum(token in words for token in tokens) / len(tokens)
        finished = tokens[-1] == "." and 2 <= len(tokens) <= 12
        scores.append(0.5 * known + 0.5 * finished)
    return scores


def length(completions: list[str], **_: Any) -> list[float]:
    """One point per ten characters, whatever they say."""
    return [len(text) / 10 for text in completions]
