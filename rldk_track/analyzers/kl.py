"""KL rules: sudden spikes, sustained drift above a target, and an adaptive KL controller that stopped moving.

KL here is the policy's divergence from the reference model as the trainer logs it (``kl/mean``;
TRL's ``kl``, OpenRLHF's ``kl``, legacy PPO's ``objective/kl``). Per-token KL (GRPO, RLOO,
OpenRLHF) is usually 0.001-0.1; legacy PPO's ``objective/kl`` is summed over tokens and tens of
times larger, so set ``target`` for it.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Iterable, Mapping

from rldk_track.analyzers.names import aliases, pick
from rldk_track.analyzers.rule import Check, MetricRule, Rule, firing, healthy, hold
from rldk_track.analyzers.stats import SortedWindow

_SPIKE_ACTION = (
    "Look at the batch at this step (outlier prompts, a reward bug, a data-loader glitch); if spikes "
    "repeat, lower the learning rate or raise the KL coefficient, and check gradient clipping."
)
_DRIFT_ACTION = (
    "Raise the KL coefficient (beta / init_kl_coef) or use an adaptive KL controller, lower the "
    "learning rate, or stop earlier; check that the reference model is the one you meant."
)
_STUCK_ACTION = (
    "The adaptive KL controller is not reacting: check its target and horizon, whether the "
    "coefficient hit a clamp, and that the KL it is fed is the one logged here."
)


class KLSpike(MetricRule):
    """KL jumps far above its recent level.

    With ``med``/``sd`` the median and MAD-based standard deviation of the previous ``window``
    values: fires when ``(kl - med) / sd >= z`` *and* ``kl / max(med, floor) >= ratio`` (a jump
    that is both far outside the noise and materially large); critical when the ratio is at least
    ``critical_ratio`` and KL itself is at least ``critical_kl``. The ``floor`` (0.02) keeps the
    blips of the first steps, when KL is ~0.001 and one batch can be 10x that, from counting as
    spikes: a KL of 0.04 is no news. Clears once ``kl / max(med, floor) <= clear_ratio`` for ``clear_after``
    steps. Every value joins the window, so a lasting level shift stops counting as a spike once
    it is the new median (the ``kl_drift`` rule judges levels).
    """

    name = "kl_spike"

    def __init__(
        self,
        *,
        metric: str = "kl/mean",
        window: int = 20,
        min_history: int = 10,
        z: float = 8.0,
        ratio: float = 3.0,
        critical_ratio: float = 10.0,
        critical_kl: float = 0.2,
        clear_ratio: float = 1.5,
        floor: float = 2e-2,
        clear_after: int = 2,
    ) -> None:
        super().__init__(metric, clear_after)
        if not 2 <= min_history <= window:
            raise ValueError("kl_spike: need 2 <= min_history <= window")
        self._history = SortedWindow(window)
        self.min_history = min_history
        self.z = z
        self.ratio = ratio
        self.critical_ratio = critical_ratio
        self.critical_kl = critical_kl
        self.clear_ratio = clear_ratio
        self.floor = floor

    def judge(self, step: int, key: str, kl: float) -> Check:
        history = self._history
        if len(history) < self.min_history:
            history.append(kl)
            return hold(key)
        med = history.median()
        base = max(med, self.floor)
        ratio = kl / base
        # the noise scale only matters once the ratio passes (the usual record's does not)
        sd = max(history.robust_sd(med), 1e-12) if ratio >= self.ratio else 0.0
        history.append(kl)
        if ratio >= self.ratio and (kl - med) / sd >= self.z:
            threshold = max(med + self.z * sd, self.ratio * base)
            severity = "critical" if ratio >= self.critical_ratio and kl >= self.critical_kl else "warning"
            message = (f"KL spike: {key} = {kl:.4g} at step {step} is {ratio:.1f}x its running median "
                       f"{med:.4g} (robust z = {(kl - med) / sd:.1f})")
            return firing(key, kl, threshold, message, _SPIKE_ACTION, severity)
        if ratio <= self.clear_ratio:
            return healthy(key, kl, self.clear_ratio * base,
                           lambda: f"KL back near its running median: {key} = {kl:.4g} (median {med:.4g})")
        return hold(key)


class KLDrift(MetricRule):
    """KL stays above its target.

    Fires when the mean of the last ``window`` KL values (or of all of them, from ``min(3,
    window)`` on, in a short log) exceeds ``target`` (critical above ``critical_factor * target``);
    clears when that mean falls below ``clear_factor * target``. ``kl_runaway`` reports growth
    before the budget is spent.
    """

    name = "kl_drift"

    def __init__(
        self,
        *,
        metric: str = "kl/mean",
        target: float = 0.3,
        window: int = 10,
        critical_factor: float = 10.0,
        clear_factor: float = 0.8,
        clear_after: int = 1,
    ) -> None:
        super().__init__(metric, clear_after)
        if target <= 0:
            raise ValueError("kl_drift: target must be positive")
        self._history: deque[float] = deque(maxlen=window)
        self.target = target
        self.critical_factor = critical_factor
        self.clear_factor = clear_factor

    def judge(self, step: int, key: str, kl: float) -> Check:
        history = self._history
        history.append(kl)
        if len(history) < min(3, history.maxlen):
            return hold(key)
        level = sum(history) / len(history)
        if level > self.target:
            critical = level > self.critical_factor * self.target
            threshold = self.critical_factor * self.target if critical else self.target
            message = (f"KL drift: the mean of {key} over the last {len(history)} logged steps is {level:.4g}, "
                       f"{level / self.target:.1f}x the target {self.target:g}")
            return firing(key, level, threshold, message, _DRIFT_ACTION, "critical" if critical else "warning")
        if level < self.clear_factor * self.target:
            return healthy(key, level, self.clear_factor * self.target,
                           lambda: f"KL back under its target: mean {key} = {level:.4g} (target {self.target:g})")
        return hold(key)


class KLRunaway(MetricRule):
    """KL grows exponentially: it doubles within ``doubling_steps`` optimizer steps, sustained.

    Over the records of the last ``horizon`` optimizer steps (at least ``records`` of them), fits
    ``log(kl) = a + b * step``;
    fires when the doubling time ``ln 2 / b`` is at most ``doubling_steps``, the fit is tight
    (``t >= t``), and the latest KL is at least ``min_kl`` (early in training KL grows from ~0
    exponentially too, which is no news). Counting in optimizer steps makes it independent of
    ``logging_steps``. Clears when the doubling time is over ``3 * doubling_steps`` (or KL shrinks).
    """

    name = "kl_runaway"

    def __init__(
        self,
        *,
        metric: str = "kl/mean",
        records: int = 4,
        horizon: int = 20,
        doubling_steps: float = 20.0,
        min_kl: float = 0.1,
        t: float = 6.0,
        clear_after: int = 2,
    ) -> None:
        super().__init__(metric, clear_after)
        if records < 3 or doubling_steps <= 0:
            raise ValueError("kl_runaway: need records >= 3 and doubling_steps > 0")
        self._points: deque[tuple[int, float]] = deque()
        self.records = records
        self.horizon = horizon
        self.doubling_steps = doubling_steps
        self.min_kl = min_kl
        self.t = t

    def judge(self, step: int, key: str, kl: float) -> Check:
        points = self._points
        if points and step <= points[-1][0]:
            points.clear()  # steps went backwards (a resumed run): start again
        points.append((step, math.log(max(kl, 1e-6))))
        while len(points) > self.records and points[0][0] <= step - self.horizon:
            points.popleft()
        if kl < self.min_kl / 2:
            return healthy(key, kl, self.min_kl / 2, lambda: f"KL small again ({key} = {kl:.4g})")
        if kl < self.min_kl:
            return hold(key)
        if len(points) < self.records:
            return hold(key)
        slope, t = _slope(points)
        doubling = math.log(2) / slope if slope > 0 else math.inf
        if doubling <= self.doubling_steps and t >= self.t:
            message = (f"KL runaway: {key} = {kl:.4g} at step {step} doubles every {doubling:.0f} optimizer steps "
                       f"(over the last {len(points)} records)")
            return firing(key, kl, self.min_kl, message, _DRIFT_ACTION)
        if doubling > 3 * self.doubling_steps:
            return healthy(key, kl, None, lambda: f"KL no longer growing fast ({key} = {kl:.4g})")
        return hold(key)


def _slope(points: deque[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares slope of y on x and its t statistic (inf when the points lie on the line)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0, 0.0
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    resid = sum((y - my - slope * (x - mx)) ** 2 for x, y in points) / (n - 2)
    if resid <= 0:
        return slope, math.inf if slope > 0 else 0.0
    return slope, slope / math.sqrt(resid / sxx)


class KLControllerStuck(Rule):
    """The KL coefficient does not move while KL is far from its target.

    Engages once the coefficient (``kl/coef``; TRL ``beta``, OpenRLHF ``kl_coef``) has changed
    by more than ``tolerance`` (relative) since its first value, which shows an adaptive
    controller is at work (``adaptive=True`` engages it from the start, ``False`` turns it off); a
    fixed coefficient is never "stuck". Then fires when, over the last ``window`` records, the
    coefficient's relative spread ``(max - min) / |mean|`` is at most ``tolerance`` while the mean
    KL is outside ``[target / far_factor, target * far_factor]``.
    """

    name = "kl_controller_stuck"

    def __init__(
        self,
        *,
        metric: str = "kl/mean",
        coef_metric: str = "kl/coef",
        target: float = 0.1,
        window: int = 20,
        tolerance: float = 1e-3,
        far_factor: float = 2.0,
        adaptive: bool | None = None,
        clear_after: int = 1,
    ) -> None:
        super().__init__(clear_after)
        if target <= 0 or far_factor <= 1:
            raise ValueError("kl_controller_stuck: need target > 0 and far_factor > 1")
        self._kl_names = aliases(metric)
        self._coef_names = aliases(coef_metric)
        self._coefs: deque[float] = deque(maxlen=window)
        self._kls: deque[float] = deque(maxlen=window)
        self._first_coef: float | None = None
        self._engaged = bool(adaptive)
        self.adaptive = adaptive
        self.target = target
        self.tolerance = tolerance
        self.far_factor = far_factor

    def check(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        if self.adaptive is False:
            return ()
        kl_found = pick(values, self._kl_names)
        if kl_found is not None:
            self._kls.append(kl_found[1])
        coef_found = pick(values, self._coef_names)
        if coef_found is None:
            return ()
        coef_key, coef = coef_found
        self._coefs.append(coef)
        if self._first_coef is None:
            self._first_coef = coef
        if not self._engaged:
            self._engaged = abs(coef - self._first_coef) > self.tolerance * max(abs(self._first_coef), 1e-12)
        kl_key = kl_found[0] if kl_found else self._kl_names[0]
        if not self._engaged or len(self._coefs) < self._coefs.maxlen or len(self._kls) < self._kls.maxlen:
            return [("kl_coef", hold(kl_key))]
        coefs = self._coefs
        spread = (max(coefs) - min(coefs)) / max(abs(sum(coefs) / len(coefs)), 1e-12)
        kl = sum(self._kls) / len(self._kls)
        high, low = self.target * self.far_factor, self.target / self.far_factor
        if spread <= self.tolerance and not low <= kl <= high:
            message = (f"KL controller stuck: {coef_key} has stayed at {coef:.4g} for {len(coefs)} logged steps "
                       f"while the mean {kl_key} = {kl:.4g} is {'above' if kl > high else 'below'} "
                       f"{high if kl > high else low:.4g} (target {self.target:g})")
            return [("kl_coef", firing(kl_key, kl, high if kl > high else low, message, _STUCK_ACTION))]
        return [("kl_coef", healthy(
            kl_key, kl, high, lambda: f"KL controller moving again ({coef_key} = {coef:.4g}, mean {kl_key} = {kl:.4g})"))]
