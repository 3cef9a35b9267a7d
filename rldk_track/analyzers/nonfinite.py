"""NaN or Inf in any metric: the run has numerically broken (or a metric is computed wrongly)."""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from rldk_track.analyzers.rule import Check, Rule, firing, healthy
from rldk_track.analyzers.names import ByKeys
from rldk_track.analyzers.stats import all_finite, is_finite

_ACTION = (
    "Stop and inspect: lower the learning rate, enable gradient clipping (max_grad_norm), look for "
    "log(0) or division by zero in the reward and loss, prefer bf16 to fp16, and resume from the "
    "last healthy checkpoint."
)


class NonFinite(Rule):
    """Any metric is NaN or +-Inf (always critical).

    One episode covers every metric at once, so a NaN that spreads to thirty metrics is one alert
    (it names the first few). It clears once every metric that went non-finite has been logged
    finite again. Keys starting with one of ``ignore`` are not watched.
    """

    name = "nonfinite"

    def __init__(self, *, ignore: tuple[str, ...] = ()) -> None:
        super().__init__(clear_after=1)
        self.ignore = tuple(ignore)
        self._bad: dict[str, float] = {}  # metric -> its last non-finite value, insertion-ordered

    def check(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        was_bad = bool(self._bad)
        if not was_bad and all_finite(values):  # the usual record: nothing to track, checked in C
            return ()
        for key, value in values.items():
            if is_finite(value):
                self._bad.pop(key, None)
            elif not (self.ignore and key.startswith(self.ignore)):
                self._bad[key] = value
        if self._bad:
            first, value = next(iter(self._bad.items()))
            names = list(self._bad)
            shown = ", ".join(f"{k} = {self._bad[k]}" for k in names[:5])
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            message = f"Non-finite metrics at step {step}: {shown}{more}"
            return [("any", firing(first, value, None, message, _ACTION, "critical"))]
        if was_bad:
            return [("any", healthy(None, None, None, f"All metrics finite again at step {step}"))]
        return ()


_REWARD_ACTION = (
    "A reward function returned NaN or Inf (TRL averages rewards with nanmean, so the logged reward hides "
    "it): look for division by zero, log(0), or a failed parse or API call in it, and return a finite "
    "fallback (or None where the function does not apply)."
)

#: ``reward/<fn>/nonfinite_frac``, logged by :class:`rldk_track.integrations.reward_watch.RewardWatch`.
_REWARD_NONFINITE = re.compile(r"^reward/(?P<fn>[^/]+)/nonfinite_frac$")
#: ``(key, fn)`` of each such key of a record, found once per key set rather than per record.
_nonfinite_fracs = ByKeys(lambda keys: tuple((k, m["fn"]) for k in keys if (m := _REWARD_NONFINITE.match(k))))


class RewardNonFinite(Rule):
    """A watched reward function returned NaN or +-Inf for some completions (warning).

    Reads ``reward/<fn>/nonfinite_frac`` (what ``RewardWatch`` logs); fires when it is above 0,
    clears after ``clear_after`` records at 0. Each function has its own alert name,
    ``reward_nonfinite/<fn>``.
    """

    name = "reward_nonfinite"
    per_subject_alerts = True

    def __init__(self, *, clear_after: int = 2) -> None:
        super().__init__(clear_after)

    def check(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        checks = []
        for key, fn in _nonfinite_fracs(values):
            value = values[key]
            if not is_finite(value):
                continue
            if value > 0:
                message = f"Reward function {fn} returned NaN/Inf for {value:.0%} of completions at step {step}"
                checks.append((fn, firing(key, value, 0.0, message, _REWARD_ACTION)))
            else:
                checks.append((fn, healthy(key, value, 0.0, f"Reward function {fn} finite again")))
        return checks
