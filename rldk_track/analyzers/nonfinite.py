"""NaN or Inf in any metric: the run has numerically broken (or a metric is computed wrongly)."""

from __future__ import annotations

from typing import Iterable, Mapping

from rldk_track.analyzers.rule import Check, Rule, firing, healthy
from rldk_track.analyzers.stats import is_finite

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
