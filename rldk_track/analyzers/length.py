"""Truncation: most completions are cut at the length limit (``max_completion_length``).

The strongest length-hacking signal in TRL's logs is ``completions/clipped_ratio`` (canonical
``length/truncated_ratio``; OpenRLHF's ``truncated``) going to 1.0: every completion runs to the
cap, usually because the reward pays for length or the policy lost the end-of-sequence token.
"""

from __future__ import annotations

from collections import deque

from rldk_track.analyzers.rule import Check, MetricRule, firing, healthy, hold

_ACTION = (
    "Read completions: if they ramble to the limit, the reward may pay for length (add a length penalty or "
    "normalize by length) or the policy lost the end-of-sequence token; raising max_completion_length only "
    "hides it."
)


class Truncation(MetricRule):
    """The fraction of truncated completions stays high.

    Fires when the mean ``length/truncated_ratio`` of the last ``window`` records is at least
    ``threshold``; clears when it is below ``clear``. Reads nothing else, so it works from the
    first record of a run and at any logging rate.
    """

    name = "truncation"

    def __init__(
        self,
        *,
        metric: str = "length/truncated_ratio",
        window: int = 2,
        threshold: float = 0.5,
        clear: float = 0.3,
        clear_after: int = 2,
    ) -> None:
        super().__init__(metric, clear_after)
        if not 0 < clear < threshold <= 1:
            raise ValueError("truncation: need 0 < clear < threshold <= 1")
        self._history: deque[float] = deque(maxlen=window)
        self.threshold = threshold
        self.clear = clear

    def judge(self, step: int, key: str, ratio: float) -> Check:
        self._history.append(ratio)
        if len(self._history) < self._history.maxlen:
            return hold(key)
        level = sum(self._history) / len(self._history)
        if level >= self.threshold:
            message = (f"Truncation: {level:.0%} of completions hit the length limit over the last "
                       f"{len(self._history)} records ({key})")
            return firing(key, level, self.threshold, message, _ACTION)
        if level < self.clear:
            return healthy(key, level, self.clear,
                           lambda: f"Completions end before the limit again ({key} = {level:.0%})")
        return hold(key)
