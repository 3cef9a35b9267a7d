"""TRL's completions as :class:`~rldk_track.records.Samples`: what ``RLDKCallback(samples=True)``
records at each logging step of a GRPO or RLOO run.

TRL's GRPO and RLOO trainers keep the latest generation batch in ``trainer._logs`` (prompts,
completions, the reward of each reward function, advantages), whether or not ``log_completions``
or ``report_to`` is set; ``log_completions`` only decides whether TRL prints them, writes
``<output_dir>/completions/completions_<step>.parquet`` and sends a table to W&B/trackio. A
``TrainerCallback`` is not given its trainer, so :func:`find_trainer` takes it from the caller's
frames (transformers calls ``on_log`` from ``Trainer.log``). The columns are ``prompt``,
``completion``, ``reward`` (the weighted sum over reward functions, as TRL computes it; NaN
rewards are skipped as TRL's ``nansum`` does), ``reward/<function>`` and ``advantage``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

#: Frames searched above the callback for the trainer (``Trainer.log`` -> handler -> callback).
_MAX_FRAMES = 8


def find_trainer() -> Any | None:
    """The ``transformers.Trainer`` whose ``log`` is running in this thread's call stack (None if
    there is none, e.g. a callback called by hand)."""
    from transformers import Trainer

    frame = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Trainer):
            return candidate
        frame = frame.f_back
    return None


class CompletionsSource:
    """Reads the latest generation batch of a GRPO/RLOO trainer, once per batch: a batch that is
    still the latest at the next logging step (several optimizer steps per generation) is not
    recorded again."""

    def __init__(self) -> None:
        self._last: tuple[int, int, int] | None = None

    def columns(self, trainer: Any) -> dict[str, list[Any]] | None:
        """The batch as columns (shallow copies, cheap on the training thread), or None when the
        trainer keeps no completions or the batch was recorded already."""
        logs = getattr(trainer, "_logs", None)
        if not isinstance(logs, dict) or not logs.get("completion"):
            return None
        prompts, completions = list(logs.get("prompt") or ()), list(logs["completion"])
        signature = (len(completions), id(completions[0]), id(completions[-1]))
        if signature == self._last:
            return None
        self._last = signature
        rewards = {str(name): list(values) for name, values in (logs.get("rewards") or {}).items()}
        table: dict[str, list[Any]] = {"prompt": prompts, "completion": completions}
        if rewards:
            table["reward"] = weighted_sum(rewards, reward_weights(trainer, len(rewards)), len(completions))
            table.update({f"reward/{name}": values for name, values in rewards.items()})
        advantages = list(logs.get("advantages") or ())
        if advantages:
            table["advantage"] = advantages
        for name, values in (logs.get("extra") or {}).items():
            table.setdefault(str(name), list(values))
        return table


def reward_weights(trainer: Any, count: int) -> list[float]:
    """The trainer's ``reward_weights`` as floats (all 1.0 when it has none or not ``count``)."""
    weights = getattr(trainer, "reward_weights", None)
    try:
        values = [float(w) for w in (weights.tolist() if hasattr(weights, "tolist") else weights)]
    except TypeError:
        return [1.0] * count
    return values if len(values) == count else [1.0] * count


def weighted_sum(rewards: dict[str, list[Any]], weights: list[float], length: int) -> list[float | None]:
    """Per row, the weighted sum of the functions' rewards that are numbers (None: none is)."""
    out: list[float | None] = []
    columns = list(rewards.values())
    for i in range(length):
        total, seen = 0.0, False
        for weight, column in zip(weights, columns):
            value = column[i] if i < len(column) else None
            if isinstance(value, (int, float)) and not math.isnan(value):
                total += weight * value
                seen = True
        out.append(total if seen else None)
    return out
