"""Reward hacking signatures: the reward rises for the wrong reasons.

None of these proves hacking (read some completions), but each is the shape it usually takes:

* ``kl_entropy``: the reward climbs while KL grows several-fold and entropy falls, i.e. the
  policy is buying reward by moving far from the reference and narrowing onto a few outputs;
* ``length``: the response length runs away while the reward rises, i.e. the reward pays for
  length;
* ``component``: with several reward functions, one climbs while all the others stay flat, i.e.
  the policy is optimizing the easiest component only.

All three judge linear trends over the last ``window`` logged values of each series (ordinary
least squares against position; ``t`` = slope / its standard error). The first ``warmup``
values of each series are skipped (none by default: the trend tests are strict enough that early
training does not pass them), so the first verdict comes at record ``window`` (40), not after a
warm-up as well; ``truncation`` and ``reward_shift`` see the common kinds of hacking sooner still.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from rldk_track.analyzers.names import aliases, pick, reward_components
from rldk_track.analyzers.rule import Check, Rule, firing, healthy
from rldk_track.analyzers.stats import SlidingWindow, Trend

_KL_ENTROPY_ACTION = (
    "Read completions from these steps: if they exploit the reward model, raise the KL coefficient, "
    "fix or ensemble the reward model, lower the learning rate, or stop at an earlier checkpoint."
)
_LENGTH_ACTION = (
    "Check whether the reward correlates with length: add a length penalty or normalize the reward by "
    "length, cap max_completion_length, or compare rewards at equal length."
)
_COMPONENT_ACTION = (
    "Read completions: the policy may be satisfying only this reward function; rebalance "
    "reward_weights, or check this function for an exploit."
)

_COMPONENTS_TOGETHER = healthy(None, None, None, "Reward components move together again")


class _Series(SlidingWindow):
    """The last ``window`` values of one metric after its first ``warmup`` are skipped, and the key
    it was last logged under. A ``lazy`` series (KL, entropy, length: fitted only while the
    reward's trend passes) defers its window updates until it is fitted (``SlidingWindow.push``)."""

    __slots__ = ("key", "seen", "_add")

    def __init__(self, window: int, lazy: bool = False) -> None:
        super().__init__(window)
        self.key = ""
        self.seen = 0
        self._add = self.push if lazy else self.append

    def add(self, key: str, value: float, warmup: int) -> None:
        self.key = key
        self.seen += 1
        if self.seen > warmup:
            self._add(value)


class RewardHacking(Rule):
    """Fires (warning) on any of the three signatures; see the module docstring and docs/analyzers.md.

    * ``kl_entropy``: reward ``t >= t``, KL ``t >= t`` with fitted end ``>= kl_growth *
      max(fitted start, kl_floor)``, entropy ``t <= -t`` with fitted end ``<= (1 - entropy_drop)
      * fitted start``.
    * ``length``: length ``t >= t`` with fitted end ``>= length_growth * fitted start``, and
      reward ``t >= t``.
    * ``component``: at least two reward components; exactly one rose by at least
      ``component_shift`` times its residual standard deviation (fitted end - fitted start) and
      every other moved by at most ``flat_shift`` times its own.

    Each clears after ``clear_after`` consecutive evaluations without its signature.
    """

    name = "reward_hacking"
    per_subject_alerts = True  # reward_hacking/kl_entropy, reward_hacking/length, reward_hacking/component

    def __init__(
        self,
        *,
        window: int = 40,
        warmup: int = 0,
        t: float = 4.0,
        component_shift: float = 6.0,
        flat_shift: float = 1.0,
        kl_growth: float = 3.0,
        kl_floor: float = 1e-3,
        entropy_drop: float = 0.3,
        length_growth: float = 1.5,
        clear_after: int = 10,
    ) -> None:
        super().__init__(clear_after)
        if window < 10:
            raise ValueError("reward_hacking: window must be at least 10")
        self.window = window
        self.warmup = warmup
        self.t = t
        self.component_shift = component_shift
        self.flat_shift = flat_shift
        self.kl_growth = kl_growth
        self.kl_floor = kl_floor
        self.entropy_drop = entropy_drop
        self.length_growth = length_growth
        self._names = {
            "reward": aliases("reward/mean"),
            "kl": aliases("kl/mean"),
            "entropy": aliases("entropy/mean"),
            "length": aliases("length/response_mean"),
        }
        self._series = {name: _Series(window, lazy=name != "reward") for name in self._names}
        self._watch = [(names, self._series[name]) for name, names in self._names.items()]
        self._components: dict[str, _Series] = {}

    def check(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        warmup, series = self.warmup, self._series
        reward = series["reward"]
        reward_hit = None
        for names, one in self._watch:
            hit = pick(values, names)
            if hit is not None:
                one.key = hit[0]  # _Series.add, inlined: six series a record
                one.seen += 1
                if one.seen > warmup:
                    one._add(hit[1])
                if one is reward:
                    reward_hit = hit
        components = reward_components(values)
        for fn, (key, value) in components.items():
            component = self._components.get(fn)
            if component is None:
                component = self._components[fn] = _Series(self.window)
            component.add(key, value, warmup)
        checks: list[tuple[str, Check]] = []
        if reward_hit is not None and reward.full:
            reward_trend = reward.trend()
            # Both signatures need the reward's trend to pass; while it does not and no episode is
            # open, their verdict can only be healthy, which changes nothing: skip the other fits.
            judge = reward_trend.t >= self.t
            if series["kl"].full and series["entropy"].full and (judge or not self.quiet("kl_entropy")):
                checks.append(("kl_entropy", self._kl_entropy(reward, reward_trend)))
            if series["length"].full and (judge or not self.quiet("length")):
                checks.append(("length", self._length(reward, reward_trend)))
        if components:
            full = {fn: s for fn, s in self._components.items() if s.full}
            if len(full) >= 2:
                checks.append(("component", self._component(full)))
        return checks

    def _kl_entropy(self, reward: _Series, rt: Trend) -> Check:
        # The KL and entropy trends are fitted only once the reward's passes (in that order, the
        # conditions cut short): a healthy run's record costs one fit here, not three.
        if rt.t >= self.t:
            kl, entropy = self._series["kl"], self._series["entropy"]
            kt = kl.trend()
            kl_ratio = kt.end / max(kt.start, self.kl_floor)
            if kt.t >= self.t and kl_ratio >= self.kl_growth:
                et = entropy.trend()
                entropy_ratio = et.end / et.start if et.start > 0 else 1.0
                if et.t <= -self.t and entropy_ratio <= 1 - self.entropy_drop:
                    message = (f"Reward hacking signature: over the last {self.window} logged steps {reward.key} "
                               f"rose {rt.start:.3g} -> {rt.end:.3g} while {kl.key} grew {kl_ratio:.1f}x and "
                               f"{entropy.key} fell {1 - entropy_ratio:.0%}")
                    return firing(reward.key, rt.end, None, message, _KL_ENTROPY_ACTION)
        return healthy(reward.key, rt.end, None,
                       lambda: f"Reward/KL/entropy signature gone ({reward.key} = {rt.end:.3g})")

    def _length(self, reward: _Series, rt: Trend) -> Check:
        length = self._series["length"]
        lt = length.trend()
        if lt.t >= self.t and lt.ratio >= self.length_growth and rt.t >= self.t:
            message = (f"Reward hacking signature: {length.key} grew {lt.ratio:.1f}x ({lt.start:.4g} -> {lt.end:.4g}) "
                       f"over the last {self.window} logged steps while {reward.key} rose "
                       f"({rt.start:.3g} -> {rt.end:.3g}); the reward may be paying for length")
            return firing(length.key, lt.ratio, self.length_growth, message, _LENGTH_ACTION)
        return healthy(length.key, lt.ratio, self.length_growth,
                       lambda: f"Response length no longer running away ({lt.ratio:.2f}x)")

    def _component(self, components: dict[str, _Series]) -> Check:
        trends, shifts, rising, flat = {}, {}, [], []
        # With component_shift > flat_shift no component is both rising and flat, so one that is
        # neither, or a second rising one, settles it: not firing (the rest need no fit).
        exclusive = self.component_shift > self.flat_shift
        for fn, series in components.items():
            tr = trends[fn] = series.trend()
            shift = shifts[fn] = (tr.end - tr.start) / max(tr.residual_sd, 1e-12)
            if shift >= self.component_shift:
                rising.append(fn)
            if abs(shift) <= self.flat_shift:
                flat.append(fn)
            if exclusive and (len(rising) > 1 or len(rising) + len(flat) < len(trends)):
                return _COMPONENTS_TOGETHER
        if len(rising) == 1 and len(flat) == len(trends) - 1:
            fn = rising[0]
            series, tr = components[fn], trends[fn]
            others = ", ".join(components[o].key for o in flat)
            message = (f"Reward hacking signature: {series.key} rose {tr.start:.3g} -> {tr.end:.3g} over the last "
                       f"{self.window} logged steps while {others} stayed flat")
            return firing(series.key, shifts[fn], self.component_shift, message, _COMPONENT_ACTION)
        return _COMPONENTS_TOGETHER
