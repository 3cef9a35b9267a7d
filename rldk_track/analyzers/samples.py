"""Pure statistics over one step's sample rows (completions and their rewards), for the health
rules: how many hit the length limit, how degenerate the outputs are, whether reward follows
length within the step, which rewards are outliers. No tracker, no state: lists in, numbers out.
"""

from __future__ import annotations

import math
from typing import Sequence

from rldk_track.samples import finite_or_none


def truncated_share(lengths: Sequence[int], limit: int) -> float:
    """Share of completions whose length reached ``limit`` (e.g. TRL's ``max_completion_length``
    in tokens): generation was cut, not finished. NaN for no completions."""
    return sum(1 for n in lengths if n >= limit) / len(lengths) if lengths else math.nan


def empty_share(completions: Sequence[str]) -> float:
    """Share of completions that are empty or only whitespace (NaN for none)."""
    return sum(1 for c in completions if not c.strip()) / len(completions) if completions else math.nan


def repeated_ngram_share(text: str | Sequence[str], n: int = 3) -> float:
    """Share of ``text``'s word n-grams that repeat an earlier one (0: none repeats; a looping
    completion approaches 1). 0.0 for text shorter than ``n`` words. ``text`` may also be given
    as its words (``text.split()``), so a caller that needs them twice splits once."""
    words = text.split() if isinstance(text, str) else text
    total = len(words) - n + 1
    if total < 1:
        return 0.0
    return 1.0 - len(set(zip(*(words[i:] for i in range(n))))) / total


def distinct_n(completions: Sequence[str] | Sequence[Sequence[str]], n: int = 2) -> float:
    """Distinct word n-grams over all n-grams across a group of completions (low: the group says
    the same thing; mode collapse). NaN when the group has no n-gram. Each completion may also be
    given as its words."""
    grams: set[tuple[str, ...]] = set()
    total = 0
    for text in completions:
        words = text.split() if isinstance(text, str) else text
        total += max(0, len(words) - n + 1)
        grams.update(zip(*(words[i:] for i in range(n))))
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


def reward_z(rewards: Sequence[object]) -> list[float | None]:
    """Each reward's signed robust z-score: its distance from the step's median in units of
    1.4826 * MAD, positive above the median. NaN rewards score ``inf`` (as do +-Inf, by sign);
    rewards that are not numbers (None) score None, and every finite one does when fewer than 3
    are finite. When most rewards are equal (MAD 0) the equal ones score 0, any other +-inf."""
    values = [finite_or_none(r) for r in rewards]
    finite = sorted(v for v in values if v is not None)
    enough = len(finite) >= 3
    median = _median(finite) if enough else 0.0
    scale = 1.4826 * _median(sorted(abs(v - median) for v in finite)) if enough else 0.0
    out: list[float | None] = []
    for r, v in zip(rewards, values):
        if v is None:
            out.append((-math.inf if r == -math.inf else math.inf) if _nonfinite(r) else None)
        elif not enough:
            out.append(None)
        elif scale == 0:
            out.append(0.0 if v == median else math.copysign(math.inf, v - median))
        else:
            out.append((v - median) / scale)
    return out


def reward_mad(rewards: Sequence[object]) -> float:
    """The median absolute deviation of the finite rewards (0 when most are equal, e.g. a sparse
    0/1 reward); NaN for fewer than 3."""
    finite = sorted(v for v in (finite_or_none(r) for r in rewards) if v is not None)
    if len(finite) < 3:
        return math.nan
    median = _median(finite)
    return _median(sorted(abs(v - median) for v in finite))


def outlier_rewards(rewards: Sequence[object], threshold: float = 5.0) -> list[int]:
    """Indexes of rewards more than ``threshold`` robust z-scores (:func:`reward_z`) from the
    step's median; non-finite rewards (NaN, inf) are outliers too, None rewards are not scored."""
    return [i for i, z in enumerate(reward_z(rewards)) if z is not None and abs(z) > threshold]


def _nonfinite(value: object) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _median(ordered: Sequence[float]) -> float:
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
