"""Reward-model reliability: is the reward signal the policy learns from still trustworthy?

Five statistics over the last ``window`` logged values (formulas in docs/analyzers.md):

* ``stability`` = 1 / (1 + CV) of the batch-mean reward, with CV the spread around its linear
  trend over its mean's magnitude (inverse coefficient of variation, mapped to [0, 1]);
* ``consistency`` = mean preference accuracy (``reward/accuracy``: chosen scored above
  rejected), for reward-model, DPO and KTO training;
* ``saturation`` = fraction of groups whose completions all got the same reward (TRL's
  ``frac_reward_zero_std``), else the fraction of steps whose ``reward/std`` fell below
  ``saturation_std`` times its early level: no reward spread, no learning signal;
* ``drift`` = (mean of the last window - the highest window mean so far) / their pooled standard
  deviation: how far the reward has fallen from its best level;
* ``anomaly_rate`` = fraction of isolated outliers among the last ``window`` values: a value more
  than ``anomaly_z`` robust standard deviations from the median of the values before it and from
  the value after it (so a level shift counts as drift, not as anomalies).

Saturation, downward drift, anomaly rate and consistency raise warnings when they cross their
thresholds, each under its own alert name (``reward_reliability/saturation``, ...); stability is
reported only (it means little for rewards centred on zero). At the end of the run the statistics
go into the run summary and an ``info`` alert ``reward_reliability/report``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from statistics import median
from typing import Iterable, Mapping

from rldk_track.analyzers.names import aliases, pick
from rldk_track.analyzers.rule import Check, Rule, firing, healthy, hold
from rldk_track.analyzers.stats import SortedWindow, linear_trend, mean_sd
from rldk_track.records import Alert, Record, Summary

_SATURATION_ACTION = (
    "Most completions get the same reward, so advantages are ~0: use harder or easier prompts "
    "(filter solved ones), more generations per prompt, or a reward with partial credit."
)
_DRIFT_ACTION = (
    "The reward is falling: check for a policy collapse (entropy, KL), a reward-model or verifier "
    "change, or a data shift at this step; consider resuming from an earlier checkpoint."
)
_ANOMALY_ACTION = (
    "Many batches have outlying rewards: look for reward-model failures on unusual inputs, parsing "
    "errors in rule-based rewards, or mixed data sources; clip or normalize the reward."
)
_CONSISTENCY_ACTION = (
    "Preference accuracy is at or below chance: check the chosen/rejected columns are not swapped, "
    "the labels' quality, and the learning rate."
)

SUMMARY_PREFIX = "reward_reliability/"


class RewardReliability(Rule):
    """Watches the reward signal's quality and reports it at the end of the run."""

    name = "reward_reliability"
    per_subject_alerts = True  # reward_reliability/saturation, .../drift, .../anomaly_rate, .../consistency

    def __init__(
        self,
        *,
        window: int = 50,
        min_history: int = 10,
        baseline_steps: int = 10,
        saturation: float = 0.8,
        saturation_std: float = 0.05,
        drift: float = 3.0,
        anomaly_z: float = 5.0,
        anomaly_rate: float = 0.1,
        consistency: float = 0.5,
        clear_after: int = 5,
    ) -> None:
        super().__init__(clear_after)
        if not 2 <= min_history <= window:
            raise ValueError("reward_reliability: need 2 <= min_history <= window")
        self.window = window
        self.min_history = min_history
        self.baseline_steps = baseline_steps
        self.saturation = saturation
        self.saturation_std = saturation_std
        self.drift = drift
        self.anomaly_z = anomaly_z
        self.anomaly_rate = anomaly_rate
        self.consistency = consistency
        self._names = {
            "reward": aliases("reward/mean"),
            "std": aliases("reward/std"),
            "zero_std": aliases("reward/frac_zero_std"),
            "accuracy": aliases("reward/accuracy"),
        }
        self._keys: dict[str, str] = {}
        self._recent: deque[float] = deque(maxlen=window)
        self._before = SortedWindow(max(window - 2, 1))  # ``_recent`` but its last two values
        self._best: tuple[float, float] | None = None  # mean and sd of the best reward window so far
        self._anomalies: deque[bool] = deque(maxlen=window)
        self._anomaly_count = 0  # sum(self._anomalies), kept as they come and go
        self._early_std: list[float] = []
        self._saturated: deque[float] = deque(maxlen=window)
        self._accuracy: deque[float] = deque(maxlen=window)
        self._worst: dict[str, float] = {}
        self._last_step: int | None = None

    # -- streaming checks ------------------------------------------------------------------
    def check(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        names, keys = self._names, self._keys
        reward, std = pick(values, names["reward"]), pick(values, names["std"])
        zero_std, accuracy = pick(values, names["zero_std"]), pick(values, names["accuracy"])
        if reward is None and std is None and zero_std is None and accuracy is None:
            return ()
        self._last_step = step
        checks: list[tuple[str, Check]] = []
        if reward is not None:
            keys["reward"] = reward[0]
            checks += self._reward_checks(reward[1])
        if zero_std is not None or std is not None:
            check = self._saturation_check(zero_std, std)
            if check is not None:
                checks.append(("saturation", check))
        if accuracy is not None:
            keys["accuracy"] = accuracy[0]
            checks.append(("consistency", self._consistency_check(accuracy[1])))
        return checks

    def _reward_checks(self, reward: float) -> list[tuple[str, Check]]:
        key = self._keys["reward"]
        recent = self._recent
        recent.append(reward)
        if len(recent) >= 3:
            self._before.append(recent[-3])
        checks: list[tuple[str, Check]] = []
        if len(self._recent) >= self.min_history + 2:
            self._judge_previous(reward)
        if len(self._anomalies) == self._anomalies.maxlen:
            check = self._anomaly_check(key)
            if check is not None:
                checks.append(("anomaly_rate", check))
        if len(self._recent) == self._recent.maxlen:
            check = self._drift_check(key)
            if check is not None:
                checks.append(("drift", check))
        return checks

    def _judge_previous(self, reward: float) -> None:
        """Is the value before ``reward`` an isolated outlier: far from the median of the ones before
        it *and* from ``reward``? (A level shift moves both, so it is drift, not anomalies.)"""
        candidate, before = self._recent[-2], self._before
        med = before.median()
        z, floor = self.anomaly_z, max(1e-9, 1e-6 * abs(med))
        distance = min(abs(candidate - med), abs(candidate - reward))  # both must exceed the limit
        # limit = z * max(robust sd, floor). Most records are settled without the robust sd: by
        # the floor alone, or by counting the values near the median (robust_sd_below).
        anomaly = False if distance <= z * floor else None
        if anomaly is None and z > 0 and distance > z * floor * (1 + 1e-5):
            anomaly = before.robust_sd_below(med, distance / z)
        if anomaly is None:
            limit = z * max(before.robust_sd(med), 1e-9, 1e-6 * abs(med))
            anomaly = abs(candidate - med) > limit and abs(candidate - reward) > limit
        anomalies = self._anomalies
        if len(anomalies) == anomalies.maxlen:
            self._anomaly_count -= anomalies[0]
        anomalies.append(anomaly)
        self._anomaly_count += anomaly

    def _anomaly_check(self, key: str) -> Check | None:
        rate = self._anomaly_count / len(self._anomalies)
        self._note_worst("anomaly_rate", rate, max)
        if rate >= self.anomaly_rate:
            message = (f"Reward anomalies: {rate:.0%} of the last {len(self._anomalies)} values of {key} are isolated "
                       f"outliers, more than {self.anomaly_z:g} robust standard deviations from their running median")
            return firing(key, rate, self.anomaly_rate, message, _ANOMALY_ACTION)
        if self.quiet("anomaly_rate"):
            return None  # only a firing check changes anything while no episode is open
        if rate <= self.anomaly_rate / 2:
            return healthy(key, rate, self.anomaly_rate / 2, lambda: f"Reward anomaly rate back to {rate:.0%}")
        return hold(key)

    def _drift_check(self, key: str) -> Check | None:
        if self._drift_settled():
            return None
        d = self._drift()
        self._note_worst("drift", d, min)
        if d <= -self.drift:
            message = (f"Reward drift: the mean {key} of the last {self.window} logged steps is {-d:.1f} pooled "
                       f"standard deviations below its best window")
            return firing(key, d, -self.drift, message, _DRIFT_ACTION)
        if self.quiet("drift"):
            return None
        if d > -self.drift / 2:
            return healthy(key, d, -self.drift / 2, lambda: f"Reward back near its best (drift {d:+.1f} sd)")
        return hold(key)

    def _drift_settled(self) -> bool:
        """True when the drift of this record can change nothing, shown without its O(window) sd:
        no episode is open, the window mean is not a new best, and a bound on the drift is above
        both the firing threshold and the worst drift so far. The pooled sd is at least
        ``best_sd / sqrt(2)`` (taken as ``0.7071 * best_sd``, below it by far more than rounding),
        so dividing the same non-positive difference by that bound's floor gives a drift at or
        below the exact one."""
        best, worst = self._best, self._worst.get("drift")
        if best is None or worst is None or not self.quiet("drift"):
            return False
        recent = self._recent
        best_mean, best_sd = best
        mean = sum(recent) / len(recent)  # as mean_sd computes it
        if not mean <= best_mean:
            return False
        bound = (mean - best_mean) / max(0.7071 * best_sd, 1e-9, 1e-6 * abs(best_mean))
        return bound > worst and bound > -self.drift

    def _drift(self) -> float:
        """(mean of the last window - the best window mean so far) / their pooled standard deviation."""
        mean, sd = mean_sd(self._recent)
        if self._best is None or mean > self._best[0]:
            self._best = (mean, sd)
        best_mean, best_sd = self._best
        pooled = math.sqrt((sd * sd + best_sd * best_sd) / 2)
        return (mean - best_mean) / max(pooled, 1e-9, 1e-6 * abs(best_mean))

    def _saturation_check(self, zero_std: tuple[str, float] | None, std: tuple[str, float] | None) -> Check | None:
        if zero_std is not None:
            key, fraction = zero_std
            self._saturated.append(fraction)
        else:
            key, spread = std
            if len(self._early_std) < self.baseline_steps:
                self._early_std.append(spread)
                return hold(key)
            early = median(self._early_std)
            self._saturated.append(1.0 if spread <= self.saturation_std * early else 0.0)
        if len(self._saturated) < self._saturated.maxlen:
            return hold(key)
        level = sum(self._saturated) / len(self._saturated)
        self._note_worst("saturation", level, max)
        if level >= self.saturation:
            message = (f"Reward saturation: over the last {len(self._saturated)} logged steps {level:.0%} of the "
                       f"reward groups had no spread ({key}); there is almost no learning signal")
            return firing(key, level, self.saturation, message, _SATURATION_ACTION)
        if self.quiet("saturation"):
            return None
        if level < self.saturation - 0.2:
            return healthy(key, level, self.saturation - 0.2, lambda: f"Reward spread is back (saturation {level:.0%})")
        return hold(key)

    def _consistency_check(self, accuracy: float) -> Check:
        key = self._keys["accuracy"]
        self._accuracy.append(accuracy)
        if len(self._accuracy) < self._accuracy.maxlen:
            return hold(key)
        level = sum(self._accuracy) / len(self._accuracy)
        self._note_worst("consistency", level, min)
        if level < self.consistency:
            message = (f"Reward consistency: mean {key} over the last {len(self._accuracy)} logged steps is "
                       f"{level:.2f}, below {self.consistency:g} (chance is 0.5)")
            return firing(key, level, self.consistency, message, _CONSISTENCY_ACTION)
        if level >= self.consistency + 0.05:
            return healthy(key, level, self.consistency + 0.05, lambda: f"Preference accuracy back to {level:.2f}")
        return hold(key)

    def _note_worst(self, stat: str, value: float, pick_worse) -> None:
        self._worst[stat] = pick_worse(self._worst.get(stat, value), value)

    # -- the report ------------------------------------------------------------------------
    def report(self) -> dict[str, float | None]:
        """The five statistics over the last window (None where the run logged nothing to compute one)."""
        rewards = self._recent
        stats: dict[str, float | None] = dict.fromkeys(("stability", "consistency", "saturation", "drift", "anomaly_rate"))
        if len(rewards) >= 3:
            trend = linear_trend(rewards)
            level = abs(sum(rewards) / len(rewards))
            stats["stability"] = level / (level + trend.residual_sd) if level + trend.residual_sd > 0 else 1.0
        if self._accuracy:
            stats["consistency"] = sum(self._accuracy) / len(self._accuracy)
        if self._saturated:
            stats["saturation"] = sum(self._saturated) / len(self._saturated)
        if self._best is not None:
            stats["drift"] = self._drift()
        if self._anomalies:
            stats["anomaly_rate"] = sum(self._anomalies) / len(self._anomalies)
        return stats

    def finish(self) -> list[Record]:
        if self._last_step is None:
            return []
        stats = self.report()
        summary = {SUMMARY_PREFIX + k: v for k, v in stats.items() if v is not None}
        summary.update({f"{SUMMARY_PREFIX}worst_{k}": v for k, v in self._worst.items()})
        shown = ", ".join(f"{k} {v:.3g}" if v is not None else f"{k} n/a" for k, v in stats.items())
        raised = "; ".join(f"{subject} at step {', '.join(map(str, steps))}" for subject, steps in self.raised_at.items())
        message = (f"Reward reliability over the last {len(self._recent)} logged steps: {shown}. "
                   f"Reward-reliability alerts raised: {raised or 'none'} (other rules' alerts are their own)")
        now = time.time()
        return [
            Summary(-1, now, summary),
            Alert(-1, now, self._last_step, self.alert_name("report"), "info", message, metric=self._keys.get("reward")),
        ]
