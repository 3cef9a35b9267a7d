"""Entropy collapse: the policy's token entropy falls to a small fraction of where it started.

A collapsed policy samples nearly the same completion every time, so group-relative advantages
vanish and exploration stops. Entropy falling somewhat during RL is normal; falling below a
third of its early level and staying there is not. (SFT runs log ``entropy`` too and can shrink
it that much on a small data set; turn the rule off there if that is expected.)
"""

from __future__ import annotations

from collections import deque
from statistics import median

from rldk_track.analyzers.rule import Check, MetricRule, firing, healthy, hold

_ACTION = (
    "Raise the sampling temperature or add an entropy bonus, lower the learning rate, raise the KL "
    "coefficient; check the reward does not pay for one fixed answer (see reward_hacking)."
)


class EntropyCollapse(MetricRule):
    """Entropy stays below ``fraction`` of its early level.

    ``early`` is the highest median of ``patience`` consecutive records seen so far (from the
    first ``patience`` records on): a reference that exists in a short log and with sparse logging,
    and that a collapse inside the first records cannot pull down the way a fixed first-N baseline
    is (with ``logging_steps=10`` the first 10 records already span 100 steps). Fires when the
    median of the last ``patience`` values is below ``fraction * early`` (critical below
    ``critical_fraction * early``); clears when it is back above ``clear_fraction * early``.
    """

    name = "entropy_collapse"

    def __init__(
        self,
        *,
        metric: str = "entropy/mean",
        fraction: float = 0.3,
        critical_fraction: float = 0.1,
        clear_fraction: float = 0.4,
        patience: int = 3,
        clear_after: int = 3,
    ) -> None:
        super().__init__(metric, clear_after)
        if not 0 < critical_fraction <= fraction < clear_fraction:
            raise ValueError("entropy_collapse: need 0 < critical_fraction <= fraction < clear_fraction")
        if patience < 1:
            raise ValueError("entropy_collapse: patience must be at least 1")
        self._early: float | None = None
        self._recent: deque[float] = deque(maxlen=patience)
        self.fraction = fraction
        self.critical_fraction = critical_fraction
        self.clear_fraction = clear_fraction

    def judge(self, step: int, key: str, entropy: float) -> Check:
        self._recent.append(entropy)
        if len(self._recent) < self._recent.maxlen:
            return hold(key)
        level = median(self._recent)
        if self._early is None or level > self._early:
            self._early = level
        early = self._early
        if early <= 1e-9:
            return hold(key)
        if level < self.fraction * early:
            critical = level < self.critical_fraction * early
            threshold = (self.critical_fraction if critical else self.fraction) * early
            message = (f"Entropy collapse: {key} has stayed at {level:.4g} for {len(self._recent)} records, "
                       f"{level / early:.0%} of its highest level {early:.4g}")
            return firing(key, level, threshold, message, _ACTION, "critical" if critical else "warning")
        if level >= self.clear_fraction * early:
            return healthy(key, level, self.clear_fraction * early,
                           lambda: f"Entropy recovered: {key} = {level:.4g} ({level / early:.0%} of its highest level)")
        return hold(key)
