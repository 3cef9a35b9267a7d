"""Reward level shifts: the reward (or one reward component) jumps to a new level within a few records.

A reward whose sign flips, one scaled by 1000 (a unit bug), one that switches to paying for
something else: each is an abrupt change of level, the easiest thing to see in a reward curve and
the first thing to report. The test is a two-window test on robust statistics (chosen over CUSUM
and Page-Hinkley because it needs no drift parameter tuned to the reward's units and it adapts
to the noise as the run goes): the *reference* is the median and MAD-based standard deviation of up
to ``window`` records before the last ``confirm``; a shift is ``confirm`` records in a row on the
same side of the reference, each further than ``z`` times the noise scale from it.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from statistics import median
from typing import Iterable, Mapping

from rldk_track.analyzers.names import aliases, pick, reward_components
from rldk_track.analyzers.rule import Check, Rule, firing, healthy, hold
from rldk_track.analyzers.stats import robust_sd

_ACTION = (
    "The reward changed level abruptly: check the reward function or reward model for a change at this step "
    "(a sign or unit bug, a new version, a parsing failure), read completions from before and after it, and "
    "if the policy found an exploit, stop and fix the reward."
)


class _Level:
    """The records of one series, and its reference (median, noise scale) before the last ``confirm``,
    with how many records ago that reference was computed."""

    __slots__ = ("key", "values", "reference", "age")

    def __init__(self, size: int) -> None:
        self.key = ""
        self.values: deque[float] = deque(maxlen=size)
        self.reference: tuple[float, float] | None = None
        self.age = 0

#: Records a reference is reused for while every recent value is well inside the band (the median
#: of a 20-record window barely moves in 5 records); any value near the band gets a fresh one, so a
#: verdict of "shift" is always made against the exact reference.
_REUSE = 5


class RewardShift(Rule):
    """The mean reward, or one reward component, shifts to a new level (warning).

    With ``med`` and ``sd`` the median and MAD-based standard deviation of the ``window`` records
    before the last ``confirm`` ones (at least ``min_history``), and the noise scale
    ``scale = max(sd, rel * |med|, abs_floor)``: fires when each of the last ``confirm`` values
    is more than ``z * scale`` from ``med``, all on the same side. Clears once the last
    ``confirm`` values are all within ``z / 2 * scale`` (the reference follows a lasting new
    level as it fills with it, so an episode ends about ``window / 2`` records after the shift).
    Each series has its own alert name: ``reward_shift/reward``, ``reward_shift/<fn>``.
    """

    name = "reward_shift"
    per_subject_alerts = True

    def __init__(
        self,
        *,
        metric: str = "reward/mean",
        window: int = 20,
        min_history: int = 5,
        confirm: int = 2,
        z: float = 6.0,
        rel: float = 0.05,
        abs_floor: float = 1e-3,
        components: bool = True,
        clear_after: int = 3,
    ) -> None:
        super().__init__(clear_after)
        if not 3 <= min_history <= window or confirm < 1:
            raise ValueError("reward_shift: need 3 <= min_history <= window and confirm >= 1")
        self._names = aliases(metric)
        self.window = window
        self.min_history = min_history
        self.confirm = confirm
        self.z = z
        self.rel = rel
        self.abs_floor = abs_floor
        self.components = components
        self._series: dict[str, _Level] = {}

    def check(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        found = {"reward": pick(values, self._names)} if self._names else {}
        if self.components:
            found.update(reward_components(values))
        checks = []
        for subject, hit in found.items():
            if hit is None:
                continue
            series = self._series.get(subject)
            if series is None:
                series = self._series[subject] = _Level(self.window + self.confirm)
            series.key = hit[0]
            series.values.append(hit[1])
            check = self._judge(step, series, self.quiet(subject))
            if check is not None:
                checks.append((subject, check))
        return checks

    def _judge(self, step: int, series: _Level, quiet: bool) -> Check | None:
        """The verdict on ``series``; None where it could only be healthy or hold while ``quiet``
        (no episode open: such a check would change nothing)."""
        values = series.values
        n = len(values)
        if n < self.min_history + self.confirm:
            return None if quiet else hold(series.key)
        recent = list(islice(values, n - self.confirm, n))
        # Every test below is on the farthest of ``recent`` from ``med`` on each side: ``x - med``
        # rounds monotonically in ``x``, so "all of them beyond" is "the nearest beyond", exactly.
        low, high = min(recent), max(recent)
        series.age += 1
        if series.reference is not None and series.age <= _REUSE:
            med, scale = series.reference
            half = self.z * scale / 2
            if high - med > half or med - low > half:
                series.reference = None
        if series.reference is None or series.age > _REUSE:
            before = list(islice(values, 0, n - self.confirm))
            med = median(before)
            scale = max(robust_sd(before, med), self.rel * abs(med), self.abs_floor)
            series.reference, series.age = (med, scale), 0
        med, scale = series.reference
        limit = self.z * scale
        if low - med > limit or med - high > limit:
            last = recent[-1]
            sign = " (its sign flipped)" if med * last < 0 and abs(last) > 0.5 * abs(med) else ""
            message = (f"Reward level shift: {series.key} = {last:.4g} at step {step}, against {med:.4g} before "
                       f"({(last - med) / scale:+.0f} noise scales for {len(recent)} records in a row){sign}")
            return firing(series.key, last, med + limit if last > med else med - limit, message, _ACTION)
        if quiet:
            return None
        if high - med <= limit / 2 and med - low <= limit / 2:
            return healthy(series.key, recent[-1], limit / 2,
                           lambda: f"{series.key} back near its running level {med:.4g}")
        return hold(series.key)
