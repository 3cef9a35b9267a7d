"""Pure statistics over one step's sample rows (completions and their rewards), for the health
rules: how many hit the length limit, how degenerate the outputs are, whether reward follows
length within the step, which rewards are outliers. No tracker, no state: lists in, numbers out.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

from rldk_track.samples import finite_or_none


def truncated_share(lengths: Sequence[int], limit: int) -> float:
    """Share of completions whose length reached ``limit`` (e.g. TRL's ``max_completion_length``
    in tokens): generation was cut, not finished. NaN for no completions."""
    return sum(1 for n in lengths if n >= limit) / len(lengths) if lengths else math.nan


def empty_share(completions: Sequence[str]) -> float:
    """Share of completions that are empty or only whitespace (NaN for none)."""
    return sum(1 for c in completions if not c.strip()) / len(completions) if completions else math.nan


def repeated_ngram_share(text: str, n: int = 3) -> float:
    """Share of ``text``'s word n-grams that repeat an earlier one (0: none repeats; a looping
    completion approaches 1). 0.0 for text shorter than ``n`` words."""
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def distinct_n(completions: Sequence[str], n: int = 2) -> float:
    """Distinct word n-grams over all n-grams across a group of completions (low: the group says
    the same thing; mode collapse). NaN when the group has no n-gram."""
    grams: Counter[tuple[str, ...]] = Counter()
    for text in completions:
        words = text.split()
        grams.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else math.nan


def reward_length_correlation(rewards: Sequence[object], lengths: Sequence[int]) -> float:
    """Pearson correlation of reward and length within one step's rows (rows without a finite
    reward are left out). Near 1 from the first batches: the reward pays for length. NaN when
    fewer than 3 rows or either side is constant."""
    pairs = [(r, float(n)) for r, n in ((finite_or_none(r), n) for r, n in zip(rewards, lengths)) if r is not None]
    if len(pairs) < 3:
        return math.nan
    mean_r = sum(r for r, _ in pairs) / len(pairs)
    mean_n = sum(n for _, n in pairs) / len(pairs)
    cov = sum((r - mean_r) * (n - mean_n) for r, n in pairs)
    var_r = sum((r - mean_r) ** 2 for r, _ in pairs)
    var_n = sum((n - mean_n) ** 2 for _, n in pairs)
    return cov / math.sqrt(var_r * var_n) if var_r > 0 and var_n > 0 else math.nan


def outlier_rewards(rewards: Sequence[object], threshold: float = 5.0) -> list[int]:
    """Indexes of rewards more than ``threshold`` robust z-scores (median / MAD) from the step's
    median; non-finite rewards (NaN, inf) are outliers too, None rewards are not scored."""
    values = [finite_or_none(r) for r in rewards]
    finite = sorted(v for v in values if v is not None)
    nonfinite = [i for i, r in enumerate(rewards) if isinstance(r, float) and not math.isfinite(r)]
    if len(finite) < 3:
        return nonfinite
    median = _median(finite)
    mad = _median(sorted(abs(v - median) for v in finite))
    if mad == 0:  # most rewards are equal: any other value stands out
        return sorted(nonfinite + [i for i, v in enumerate(values) if v is not None and v != median])
    scale = 1.4826 * mad
    return sorted(nonfinite + [i for i, v in enumerate(values) if v is not None and abs(v - median) / scale > threshold])


def _median(ordered: Sequence[float]) -> float:
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
