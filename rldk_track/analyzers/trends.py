"""Trends: which way each health metric went over the whole run, and whether that is significant.

Each watched series is kept in bounded memory (:class:`~rldk_track.analyzers.stats.Downsampled`:
at most ``capacity`` bucket means). At the end of the run the Mann-Kendall test (Kendall's tau
between step and value) says whether the series trends, and Sen's slope (the median of pairwise
slopes) says by how much per step; both are rank-based, so a few outliers do not decide the
verdict. Logged metrics are autocorrelated, so read the p-value as a ranking of how clear a trend
is rather than an exact error rate.
"""

from __future__ import annotations

import time
from operator import itemgetter
from typing import Any, Callable, Iterable, Mapping, Sequence

from rldk_track.analyzers.names import ByKeys, aliases, reward_components
from rldk_track.analyzers.rule import Check, Rule
from rldk_track.analyzers.stats import Downsampled, is_finite, mann_kendall, sen_slope
from rldk_track.records import Alert, Record, Summary

#: The canonical metrics watched by default (each under whichever of its names the run logs),
#: plus every reward component.
DEFAULT_METRICS = (
    "reward/mean", "reward/std", "kl/mean", "entropy/mean", "clip/ratio", "grad/norm",
    "loss/total", "loss/policy", "length/response_mean", "reward/accuracy",
)

SUMMARY_PREFIX = "trend/"

#: Records kept before their values are added to the series (in C, a bucket at a time).
_FOLD_EVERY = 64


def _all_finite(column: Sequence[float]) -> bool:
    """No None, NaN or +-Inf in ``column`` (an overflowing sum only sends it the careful way)."""
    try:
        return is_finite(sum(column))
    except TypeError:
        return False


class Trends(Rule):
    """Summarises each watched metric's trend at the end of the run (never alerts during it).

    ``metrics``: canonical names to watch (default :data:`DEFAULT_METRICS` + reward components),
    or ``"all"`` for every metric logged. A trend is ``up``/``down`` when the Mann-Kendall
    p-value is below ``alpha``, else ``flat``; series with fewer than ``min_points`` values are
    left out.
    """

    name = "trends"

    def __init__(
        self,
        *,
        metrics: Sequence[str] | str | None = None,
        alpha: float = 0.01,
        min_points: int = 10,
        capacity: int = 128,
    ) -> None:
        super().__init__(clear_after=1)
        if isinstance(metrics, str) and metrics != "all":
            raise ValueError("trends: metrics is a list of metric names, or 'all'")
        self.all_metrics = metrics == "all"
        watched = DEFAULT_METRICS if metrics is None or self.all_metrics else tuple(metrics)
        self._names = {m: aliases(m) for m in watched}
        self.with_components = metrics is None
        self.alpha = alpha
        self.min_points = min_points
        self.capacity = capacity
        self._series: dict[str, Downsampled] = {}  # in the order of each one's first finite value
        self._made: dict[str, Downsampled] = {}  # every series a key set's plan refers to
        self._last_step: int | None = None
        self._plans = ByKeys(self._plan)
        #: (step, keys, their series, their values) of the records not yet added to the series
        self._pending: list[tuple[int, tuple[str, ...], tuple[Downsampled, ...], tuple[float, ...]]] = []

    def _plan(self, keys: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[Downsampled, ...], Callable[..., Any]]:
        """For a record with ``keys``: the key each watched metric is read under (the first of its
        names there), its series, and a getter of their values as one tuple."""
        present = set(keys)
        chosen = tuple(key for names in self._names.values() if (key := next((n for n in names if n in present), None)))
        series = tuple(self._made.setdefault(key, Downsampled(self.capacity)) for key in chosen)
        if len(chosen) > 1:
            return chosen, series, itemgetter(*chosen)
        return chosen, series, lambda values: tuple(values[key] for key in chosen)  # itemgetter needs 2+

    def check(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        self._last_step = step if self._last_step is None else max(step, self._last_step)
        if self.all_metrics:
            self._add(step, values, list(values))
            return ()
        keys, series, row = self._plans(values)
        if keys:
            self._pending.append((step, keys, series, row(values)))
            if len(self._pending) >= _FOLD_EVERY:
                self._fold()
        if self.with_components:
            watched = self._series
            for key, value in reward_components(values).values():  # finite values, as _add keeps
                series = watched.get(key)
                if series is None:
                    self._add(step, values, (key,))  # a new series joins the report (see _add)
                else:
                    series.add(step, value)
        return ()

    def _add(self, step: int, values: Mapping[str, float], keys: Sequence[str]) -> None:
        watched = self._series
        for key in keys:
            value = values.get(key)
            if value is None or not value - value == 0.0:  # missing or not finite
                continue
            series = watched.get(key)
            if series is None:
                self._fold()  # the pending records' series join the report first, as they came first
                series = watched[key] = self._made.setdefault(key, Downsampled(self.capacity))
            series.add(step, value)

    def _fold(self) -> None:
        """Add the pending records' watched values to their series, exactly as if each had been
        added as it came (``Downsampled.extend``), a block of records with the same keys at a time;
        a series joins the report at its first finite value, in record order then key order."""
        pending, self._pending = self._pending, []
        start = 0
        while start < len(pending):
            keys, series = pending[start][1], pending[start][2]
            end = start + 1
            while end < len(pending) and pending[end][1] is keys:
                end += 1
            steps = [record[0] for record in pending[start:end]]
            joining = []
            for position, (key, one, column) in enumerate(zip(keys, series, zip(*(r[3] for r in pending[start:end])))):
                points_steps, points, first = steps, column, 0
                if not _all_finite(column):
                    kept = [i for i, v in enumerate(column) if v is not None and v - v == 0.0]
                    points_steps, points = [steps[i] for i in kept], [column[i] for i in kept]
                    first = kept[0] if kept else 0
                if points and not one.count:
                    joining.append((first, position, key))
                one.extend(points_steps, points)
            for _, position, key in sorted(joining):
                self._series[key] = series[position]
            start = end

    def trends(self) -> dict[str, dict[str, float | str | int]]:
        """``{metric: {direction, slope, tau, p_value, points}}`` for each series long enough.

        A canonical metric is watched under the first of its names a record holds (canonical
        before raw).
        """
        self._fold()
        out: dict[str, dict[str, float | str | int]] = {}
        for key, series in self._series.items():
            steps, values = series.points()
            if series.count < self.min_points or len(steps) < 3:
                continue
            if max(values) == min(values):
                out[key] = {"direction": "flat", "slope": 0.0, "tau": 0.0, "p_value": 1.0, "points": series.count}
                continue
            tau, p_value = mann_kendall(values)
            slope = sen_slope(steps, values)
            direction = "flat" if not p_value < self.alpha else ("up" if tau > 0 else "down")
            out[key] = {"direction": direction, "slope": float(slope), "tau": float(tau),
                        "p_value": float(p_value), "points": series.count}
        return out

    def finish(self) -> list[Record]:
        if self._last_step is None:
            return []
        found = self.trends()
        if not found:
            return []
        summary: dict[str, float] = {}
        lines = []
        for key, trend in found.items():
            summary[f"{SUMMARY_PREFIX}{key}/slope"] = trend["slope"]
            summary[f"{SUMMARY_PREFIX}{key}/tau"] = trend["tau"]
            summary[f"{SUMMARY_PREFIX}{key}/p_value"] = trend["p_value"]
            lines.append(f"{key} {trend['direction']} (slope {trend['slope']:.3g}/step, tau {trend['tau']:+.2f}, "
                         f"p {trend['p_value']:.2g})")
        message = f"Trends (Mann-Kendall, alpha {self.alpha:g}): " + "; ".join(lines)
        now = time.time()
        return [Summary(-1, now, summary), Alert(-1, now, self._last_step, self.name, "info", message)]
