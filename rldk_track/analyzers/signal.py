"""No learning signal: the update is exactly nothing, record after record.

GRPO and RLOO learn from the spread of rewards within each group of completions. When every group
gets the same reward (``frac_reward_zero_std`` = 1, ``reward/std`` = 0), the advantages are zero;
without a KL term the gradient norm is then exactly 0 as well. One such step is normal; many in a
row (from the start, or after some point) means the run is spending compute on nothing.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from rldk_track.analyzers.names import aliases, pick
from rldk_track.analyzers.rule import Check, Rule, firing, healthy, hold

_ACTION = (
    "Check the reward function returns different values for different completions (not a constant, a "
    "parsing failure, or prompts all solved or all impossible); use more generations per prompt, harder or "
    "easier prompts, or a reward with partial credit."
)

#: (canonical metric, what "no signal" means for it, its description)
_SIGNS = (
    ("reward/frac_zero_std", lambda v: v >= 0.999, "every reward group had zero spread"),
    ("reward/std", lambda v: v == 0.0, "the reward std is exactly 0"),
    ("grad/norm", lambda v: v == 0.0, "the gradient norm is exactly 0"),
)


class NoLearningSignal(Rule):
    """For ``patience`` records in a row, every group had zero reward spread, or ``reward/std`` or
    ``grad/norm`` was exactly 0 (warning). Clears after ``clear_after`` records without any of it."""

    name = "no_learning_signal"

    def __init__(self, *, patience: int = 5, clear_after: int = 2) -> None:
        super().__init__(clear_after)
        if patience < 2:
            raise ValueError("no_learning_signal: patience must be at least 2")
        self.patience = patience
        self._names = [(aliases(metric), test, what) for metric, test, what in _SIGNS]
        self._streak = 0

    def check(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        seen = False
        sign: tuple[str, float, str] | None = None
        for names, test, what in self._names:
            hit = pick(values, names)
            if hit is None:
                continue
            seen = True
            if sign is None and test(hit[1]):
                sign = (hit[0], hit[1], what)
        if not seen:
            return ()
        if sign is None:
            self._streak = 0
            return [("signal", healthy(None, None, None, "The reward groups differ again: there is a learning signal"))]
        self._streak += 1
        if self._streak < self.patience:
            return [("signal", hold(sign[0]))]
        key, value, what = sign
        message = f"No learning signal: {what} ({key} = {value:g}) for {self._streak} records in a row"
        return [("signal", firing(key, value, None, message, _ACTION))]
