"""Optimization rules: saturated clipping, exploding gradients, a diverging loss, one bad update."""

from __future__ import annotations

from collections import deque
from statistics import median
from typing import Iterable, Mapping

from rldk_track.analyzers.names import aliases, pick
from rldk_track.analyzers.rule import Check, MetricRule, Rule, firing, healthy, hold
from rldk_track.analyzers.stats import SortedWindow, mean_sd, robust_sd

_CLIP_ACTION = (
    "Most updates are being clipped: lower the learning rate, use fewer PPO/GRPO iterations per "
    "batch (num_iterations / ppo_epochs), or check that old log-probs match the sampling policy."
)
_GRAD_ACTION = (
    "Lower the learning rate, enable or tighten gradient clipping (max_grad_norm), check the batch at "
    "this step for extreme rewards or advantages; in fp16 check the loss scaler."
)
_UPDATE_ACTION = (
    "One optimizer step moved the policy far: look at the batch of these steps (extreme rewards or "
    "advantages, a malformed sample), enable or tighten max_grad_norm, lower the learning rate; if KL and "
    "entropy do not come back within a few logged steps, resume from the last checkpoint before it."
)
_LOSS_ACTION = (
    "Lower the learning rate or raise warmup, enable gradient clipping, and resume from the last "
    "checkpoint before the rise; check the data at these steps."
)


class ClipSaturation(MetricRule):
    """The fraction of clipped probability ratios stays high.

    Fires when the mean ``clip/ratio`` over the last ``window`` logged steps exceeds
    ``threshold``; clears when it falls below ``clear``.
    """

    name = "clip_saturation"

    def __init__(
        self,
        *,
        metric: str = "clip/ratio",
        window: int = 5,
        threshold: float = 0.3,
        clear: float = 0.2,
        clear_after: int = 1,
    ) -> None:
        super().__init__(metric, clear_after)
        if not clear < threshold:
            raise ValueError("clip_saturation: need clear < threshold")
        self._history: deque[float] = deque(maxlen=window)
        self.threshold = threshold
        self.clear = clear

    def judge(self, step: int, key: str, clip: float) -> Check:
        self._history.append(clip)
        if len(self._history) < self._history.maxlen:
            return hold(key)
        level = sum(self._history) / len(self._history)
        if level > self.threshold:
            message = (f"Clip saturation: {key} averaged {level:.2f} over the last {len(self._history)} logged steps "
                       f"(threshold {self.threshold:g})")
            return firing(key, level, self.threshold, message, _CLIP_ACTION)
        if level < self.clear:
            return healthy(key, level, self.clear, lambda: f"Clipping back to normal: mean {key} = {level:.2f}")
        return hold(key)


class GradExplosion(MetricRule):
    """The gradient norm jumps far above its running median.

    Fires when ``grad/norm > factor * median`` of the previous ``window`` healthy values
    (critical above ``critical_factor * median``); clears after ``clear_after`` values below
    ``clear_factor * median``. Exploded values are kept out of the median, so an explosion that
    persists stays raised. Non-finite norms are the ``nonfinite`` rule's. A norm of exactly 0 (GRPO
    on a step where every group got the same reward: zero advantages) is skipped, so such steps
    cannot drag the median down and make an ordinary step look like an explosion
    (``no_learning_signal`` reports them when they last).
    """

    name = "grad_explosion"

    def __init__(
        self,
        *,
        metric: str = "grad/norm",
        window: int = 50,
        min_history: int = 10,
        factor: float = 10.0,
        critical_factor: float = 100.0,
        clear_factor: float = 3.0,
        clear_after: int = 3,
    ) -> None:
        super().__init__(metric, clear_after)
        if not 1 < clear_factor < factor <= critical_factor:
            raise ValueError("grad_explosion: need 1 < clear_factor < factor <= critical_factor")
        self._history = SortedWindow(window)  # sorted as well: no sort of the window per record
        self.min_history = min_history
        self.factor = factor
        self.critical_factor = critical_factor
        self.clear_factor = clear_factor

    def judge(self, step: int, key: str, norm: float) -> Check:
        if norm == 0.0:
            return hold(key)
        if len(self._history) < self.min_history:
            self._history.append(norm)
            return hold(key)
        med = max(self._history.median(), 1e-12)
        ratio = norm / med
        if ratio > self.factor:
            critical = ratio > self.critical_factor
            threshold = (self.critical_factor if critical else self.factor) * med
            message = (f"Gradient explosion: {key} = {norm:.4g} at step {step} is {ratio:.0f}x its running "
                       f"median {med:.4g}")
            return firing(key, norm, threshold, message, _GRAD_ACTION, "critical" if critical else "warning")
        self._history.append(norm)
        if ratio < self.clear_factor:
            return healthy(key, norm, self.clear_factor * med,
                           lambda: f"Gradient norm back to normal: {key} = {norm:.4g} (median {med:.4g})")
        return hold(key)


class LossDivergence(MetricRule):
    """The loss climbs well above the lowest level it reached.

    ``level`` is the median of the last ``window`` values and ``best`` the lowest level so far;
    ``noise`` is the standard deviation of the window that set ``best`` (not a robust one: a loss
    that is often exactly 0 would have no noise at all by the MAD). Fires when
    ``level - best > margin`` with ``margin = max(rise * |best|, noise_mult * noise)`` (critical
    above ``critical_mult * margin``); clears when ``level - best <= margin / 2``. Relative for
    losses that live far from zero (SFT, DPO), noise-relative for those around zero (GRPO).
    """

    name = "loss_divergence"

    def __init__(
        self,
        *,
        metric: str = "loss/total",
        window: int = 10,
        min_history: int = 20,
        rise: float = 0.5,
        noise_mult: float = 8.0,
        critical_mult: float = 4.0,
        clear_after: int = 3,
    ) -> None:
        super().__init__(metric, clear_after)
        self._history: deque[float] = deque(maxlen=window)
        self._seen = 0
        self._best: float | None = None
        self._noise = 0.0
        self.min_history = max(min_history, window)
        self.rise = rise
        self.noise_mult = noise_mult
        self.critical_mult = critical_mult

    def judge(self, step: int, key: str, loss: float) -> Check:
        self._history.append(loss)
        self._seen += 1
        if len(self._history) < self._history.maxlen:
            return hold(key)
        level = median(self._history)
        if self._best is None or level < self._best:
            self._best = level
            self._noise = mean_sd(self._history)[1]
        if self._seen < self.min_history:
            return hold(key)
        best = self._best
        margin = max(self.rise * abs(best), self.noise_mult * self._noise, 1e-12)
        if level - best > margin:
            critical = level - best > self.critical_mult * margin
            threshold = best + (self.critical_mult if critical else 1.0) * margin
            message = (f"Loss divergence: the median {key} of the last {len(self._history)} logged steps is "
                       f"{level:.4g}, up from its best {best:.4g} (allowed rise {margin:.3g})")
            return firing(key, level, threshold, message, _LOSS_ACTION, "critical" if critical else "warning")
        if level - best <= margin / 2:
            return healthy(key, level, best + margin / 2,
                           lambda: f"Loss back near its best: median {key} = {level:.4g} (best {best:.4g})")
        return hold(key)


class UpdateSpike(Rule):
    """One bad optimizer update: a big step and a moved policy show in the same logged record.

    For each watched metric, ``z`` is its distance from the median of its own previous ``window``
    values in robust standard deviations (MAD-based, at least ``rel_floor * |median|``), in the
    direction a bad update moves it: loss and gradient norm up (the *step* side), KL up and entropy
    either way (the *policy* side). Fires (warning) when the strongest step-side ``z`` and the
    strongest policy-side ``z`` are both at least ``z``: one side alone is ordinary noise (a hard
    batch, a policy drifting), both at once is the fingerprint of one update too large. Each
    metric is judged after ``min_history`` values of it; clears after ``clear_after`` records that
    do not fire.

    Why two sides and not the gradient norm alone: with ``logging_steps=k`` transformers logs the
    gradient norm of the logging step only, so one bad step's norm is seen once in ``k``, while
    loss, KL and entropy are means over the ``k`` steps: the bad step's share of them is diluted
    ``k``-fold but never lost. Being relative to each metric's own spread at this logging rate, the
    rule needs no per-rate setting. A norm of exactly 0 (GRPO, zero advantages) is skipped, and
    so is a metric whose window is all exact zeros (it has no spread to leave).
    """

    name = "update_spike"
    #: (canonical metric, side, direction): +1 up only, 0 either way.
    WATCHED = (("loss/total", "step", 1), ("grad/norm", "step", 1), ("kl/mean", "policy", 1),
               ("entropy/mean", "policy", 0))

    def __init__(
        self,
        *,
        window: int = 30,
        min_history: int = 10,
        z: float = 4.0,
        rel_floor: float = 0.01,
        clear_after: int = 2,
    ) -> None:
        super().__init__(clear_after)
        if not 3 <= min_history <= window:
            raise ValueError("update_spike: need 3 <= min_history <= window")
        if z <= 0 or rel_floor < 0:
            raise ValueError("update_spike: need z > 0 and rel_floor >= 0")
        self.min_history = min_history
        self.z = z
        self.rel_floor = rel_floor
        #: per metric: its names, side, direction, its last ``window`` values (in order and sorted)
        self._watched = [(aliases(metric), side, sign, SortedWindow(window)) for metric, side, sign in self.WATCHED]
        self._healthy = [(self.name, healthy(None, None, None, "Loss, gradient norm, KL and entropy back within "
                                             "their recent noise"))]

    def check(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        # Per side, (deviation in the watched direction, median, sorted window, key, value) of each
        # metric whose deviation could reach z (it is over z floors); the robust SD, an O(window)
        # pass, is taken only when both sides have such a metric, and for the policy side only once
        # the step side is out. Same verdicts as taking every z, at a fraction of the cost.
        candidates: dict[str, list[tuple[float, float, SortedWindow, str, float]]] = {"step": [], "policy": []}
        seen: list[tuple[SortedWindow, float]] = []
        judged = 0
        floor = self.z * self.rel_floor
        for names, side, sign, window in self._watched:
            found = pick(values, names)
            if found is None:
                continue
            key, value = found
            if value == 0.0 and sign and names[0] == "grad/norm":
                continue
            seen.append((window, value))
            ordered = window.sorted
            n = len(ordered)
            if n >= self.min_history:
                judged += 1
                med = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2  # window.median()
                d = value - med if sign else abs(value - med)
                if d > floor * abs(med) and d > 0:
                    candidates[side].append((d, med, window, key, value))
        step_side = policy_side = (0.0, "", 0.0, 0.0)
        if candidates["policy"] and self._may_reach(candidates["step"]):
            step_side = self._strongest(candidates["step"])
            if step_side[0] >= self.z:
                policy_side = self._strongest(candidates["policy"])
        for window, value in seen:  # each value joins its window after being judged
            window.append(value)
        if judged < 2:
            return ()
        if min(step_side[0], policy_side[0]) >= self.z:
            shown = " and ".join(f"{key} = {value:.4g} ({z:.1f} robust SD out)" for z, key, value, _ in (step_side, policy_side))
            message = (f"Update spike at step {step}: {shown} jumped out of their recent noise together, "
                       f"the mark of one optimizer update too large")
            return [(self.name, firing(step_side[1], step_side[2], step_side[3], message, _UPDATE_ACTION))]
        return self._healthy

    def _may_reach(self, candidates: list[tuple[float, float, SortedWindow, str, float]]) -> bool:
        """False when no candidate's deviation can be ``z`` robust SDs, settled by counting the
        values near the median (``SortedWindow.robust_sd_below``: "the robust SD is above d / z",
        with margins far wider than rounding); True when one might (then compute them)."""
        z = self.z
        return any(window.robust_sd_below(med, d / z) is not False for d, med, window, _, _ in candidates)

    def _strongest(self, candidates: list[tuple[float, float, SortedWindow, str, float]]) -> tuple[float, str, float, float]:
        """``(z, key, value, median + z_threshold * sd)`` of the candidate furthest out in robust SDs
        (z 0 if none)."""
        best = (0.0, "", 0.0, 0.0)
        for d, med, window, key, value in candidates:
            sd = max(robust_sd(window.sorted, med), self.rel_floor * abs(med))
            if sd == 0.0:  # a metric that sat exactly at 0 (no KL term, no signal) has no noise to leave
                continue
            if d / sd > best[0]:
                best = (d / sd, key, value, med + self.z * sd)
        return best
