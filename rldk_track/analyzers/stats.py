"""Small statistics in plain Python.

The rules run on the log thread for every metrics record, over windows of tens of values, so they
use these instead of numpy: importing numpy would cost more than the arithmetic. The end-of-run
trend test works on at most a few hundred bucket means, where plain Python takes milliseconds and
importing scipy.stats would take seconds at the moment the run is closing.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import Counter, deque
from functools import reduce
from operator import add
from statistics import median
from typing import Mapping, NamedTuple, Sequence

_new = tuple.__new__  # a named tuple from its fields, without the generated argument handling

#: Scales the median absolute deviation to a standard deviation for normally distributed data.
MAD_TO_SD = 1.4826

__all__ = [
    "MAD_TO_SD", "Downsampled", "SlidingWindow", "SortedWindow", "Trend", "all_finite", "is_finite", "linear_trend",
    "mann_kendall", "mean_sd", "median", "robust_sd", "sen_slope",
]


def is_finite(value: float) -> bool:
    """False for NaN and +-Inf (without a function call per value)."""
    return value - value == 0.0


def all_finite(values: Mapping[str, float]) -> bool:
    """True when no value is NaN or +-Inf, in one pass in C: a NaN or Inf makes the sum non-finite,
    and so can an overflow of finite values (False then, though all are finite: a caller that
    acts on False looks at each value)."""
    return is_finite(sum(values.values()))


def robust_sd(values: Sequence[float], center: float | None = None) -> float:
    """The standard deviation estimated from the median absolute deviation (outliers barely move it)."""
    if center is None:
        center = median(values)
    return MAD_TO_SD * median([abs(v - center) for v in values])


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for fewer than two values)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    squares = 0.0  # a plain loop: a comprehension would read ``mean`` from a closure cell each time
    for v in values:
        d = v - mean
        squares += d * d
    return mean, math.sqrt(squares / (n - 1))


class Trend(NamedTuple):
    """An ordinary least-squares line through a window of values against their position (a named
    tuple: rules fit several per metrics record, so building one must cost next to nothing)."""

    slope: float  # change per observation
    t: float  # slope / its standard error; +-inf when the points lie exactly on a sloped line
    start: float  # fitted value at the first observation
    end: float  # fitted value at the last observation
    residual_sd: float  # spread of the values around the line

    @property
    def ratio(self) -> float:
        """Fitted end over fitted start (inf when the start is not positive)."""
        return self.end / self.start if self.start > 0 else math.inf


def linear_trend(values: Sequence[float]) -> Trend:
    """Fit ``value = a + b * i`` over ``i = 0..n-1`` (n >= 3) and say how significant ``b`` is."""
    n = len(values)
    shift = sum(values) / n  # centred sums: no cancellation for large, nearly constant values
    sz = siz = szz = 0.0
    for i, y in enumerate(values):
        z = y - shift
        sz += z
        siz += i * z
        szz += z * z
    return _trend_from_sums(n, shift, sz, siz, szz)


def _trend_from_sums(n: int, shift: float, sz: float, siz: float, szz: float) -> Trend:
    """The least-squares line through ``n`` values ``y_i`` given ``z_i = y_i - shift`` sums."""
    x_mean = (n - 1) / 2
    sxx = n * (n * n - 1) / 12
    sxy = siz - x_mean * sz
    slope = sxy / sxx
    start = sz / n + shift - slope * x_mean
    residual_sd = math.sqrt(max(szz - sz * sz / n - slope * sxy, 0.0) / (n - 2))
    if residual_sd > 0:
        t = slope / (residual_sd / math.sqrt(sxx))
    else:
        t = math.copysign(math.inf, slope) if slope else 0.0
    return _new(Trend, (slope, t, start, start + slope * (n - 1), residual_sd))


class SlidingWindow:
    """The last ``size`` values of a series with running sums, so its least-squares trend costs
    O(1) per new value instead of a pass over the window. The sums are taken relative to a
    recent value and rebuilt every ``size`` appends, so rounding neither cancels nor accumulates.

    :meth:`push` defers the update for a series whose trend is seldom needed: the values wait in a
    list and are added when the trend (or ``values``) is next read, with the same operations as
    :meth:`append` would have done one by one, except that the values before the last rebuild
    they would have caused are not summed at all (the rebuild recomputes the sums from the window
    alone)."""

    __slots__ = ("_values", "_shift", "_sz", "_siz", "_szz", "_appends", "_pending", "_cap", "full")

    def __init__(self, size: int) -> None:
        if size < 3:
            raise ValueError("a trend window needs at least 3 values")
        self._values: deque[float] = deque(maxlen=size)
        self._shift = self._sz = self._siz = self._szz = 0.0
        self._appends = 0
        self._pending: list[float] = []
        self._cap = 4 * size  # pushed values held at most
        #: True once the window holds ``size`` values (pushed ones included)
        self.full = False

    @property
    def values(self) -> deque[float]:
        """The last ``size`` values, oldest first."""
        if self._pending:
            self._sync()
        return self._values

    def __len__(self) -> int:
        return min(len(self._values) + len(self._pending), self._values.maxlen)

    def push(self, value: float) -> None:
        """:meth:`append`, deferred until the window is next read."""
        pending = self._pending
        pending.append(value)
        if len(pending) >= self._cap:
            self._sync()  # bounded memory: at most one rebuild and fewer than ``size`` appends
        elif not self.full:
            self.full = len(self._values) + len(pending) >= self._values.maxlen

    def _sync(self) -> None:
        """Add the pushed values, as :meth:`append` one by one would have."""
        pending, self._pending = self._pending, []
        size = self._values.maxlen
        # append ``j`` (0-based) rebuilds when ``_appends + j + 1`` reaches a multiple of ``size``
        last = len(pending) - 1 - (self._appends + len(pending)) % size
        if last >= 0:
            self._values.extend(pending[:last + 1])
            self._rebuild()
            pending = pending[last + 1:]
        for value in pending:
            self.append(value)

    def append(self, value: float) -> None:
        if self._pending:
            self._sync()
        values = self._values
        n, shift = len(values), self._shift
        z = value - shift
        if n == values.maxlen:
            z0 = values[0] - shift
            sz = self._sz - z0
            self._szz = self._szz - z0 * z0 + z * z
            self._siz = self._siz - sz + (n - 1) * z  # every remaining value moves one position down
        else:
            sz = self._sz
            self._szz += z * z
            self._siz += n * z
            self.full = n + 1 == values.maxlen
        self._sz = sz + z
        values.append(value)
        self._appends += 1
        if self._appends >= values.maxlen:
            self._rebuild()

    def _rebuild(self) -> None:
        self._appends = 0
        self._shift = shift = self._values[-1]
        self.full = len(self._values) == self._values.maxlen
        self._sz = self._siz = self._szz = 0.0
        for i, y in enumerate(self._values):
            z = y - shift
            self._sz += z
            self._siz += i * z
            self._szz += z * z

    def trend(self) -> Trend:
        """The least-squares line through the window (at least 3 values)."""
        if self._pending:
            self._sync()
        return _trend_from_sums(len(self._values), self._shift, self._sz, self._siz, self._szz)


class SortedWindow:
    """The last ``size`` values, also kept in sorted order, so their median and robust standard
    deviation cost no sort of the window per record. Both equal ``median(values)`` and
    ``robust_sd(values, center)`` exactly (same floats, same operations)."""

    __slots__ = ("values", "sorted")

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self.sorted: list[float] = []

    def __len__(self) -> int:
        return len(self.values)

    def append(self, value: float) -> None:
        values, ordered = self.values, self.sorted
        if len(values) == values.maxlen:
            # the oldest value leaves: the first of its equals, as insort puts newer ones after it
            del ordered[bisect_left(ordered, values[0])]
        values.append(value)
        insort(ordered, value)

    def median(self) -> float:
        """The median of the values (at least one)."""
        ordered = self.sorted
        n = len(ordered)
        if n % 2:
            return ordered[n // 2]
        return (ordered[n // 2 - 1] + ordered[n // 2]) / 2

    def robust_sd(self, center: float) -> float:
        """:func:`robust_sd` of the values about ``center``. The distances below ``center`` and
        above it come out as two ascending runs (``center - v`` is ``abs(v - center)`` exactly for
        ``v <= center``), which one merge sorts."""
        ordered = self.sorted
        split = bisect_right(ordered, center)
        below = [center - v for v in ordered[:split]]
        below.reverse()
        below += [v - center for v in ordered[split:]]
        below.sort()
        n = len(below)
        mad = below[n // 2] if n % 2 else (below[n // 2 - 1] + below[n // 2]) / 2
        return MAD_TO_SD * mad

    def robust_sd_below(self, center: float, x: float) -> bool | None:
        """Whether :meth:`robust_sd` about ``center`` is below ``x``, where two binary searches
        settle it: True when it is below ``x * (1 - 1e-6)``, False when above ``x * (1 + 1e-6)``,
        None when it is nearer ``x`` than that (then compute it). The MAD is the middle distance
        from ``center``: below ``m`` when more than half the values lie within ``m`` of it, above
        when at most half do. The margins are far wider than any rounding of ``center +- m``."""
        ordered = self.sorted
        n = len(ordered)
        m = x / MAD_TO_SD
        if not (n and m > 0 and 1e-6 * m > 1e-12 * abs(center)):
            return None  # ``m`` too small against ``center`` for ``center +- m`` to be exact enough
        k = n // 2  # the MAD is the k-th smallest distance (odd n), or between the (k-1)-th and k-th
        inner = m * (1 - 2e-6)
        if bisect_left(ordered, center + inner) - bisect_right(ordered, center - inner) > k:
            return True
        outer = m * (1 + 2e-6)
        if bisect_right(ordered, center + outer) - bisect_left(ordered, center - outer) <= (k if n % 2 else k - 1):
            return False
        return None


def mann_kendall(values: Sequence[float]) -> tuple[float, float]:
    """The Mann-Kendall trend test: Kendall's tau between position and value, and its two-sided
    p-value from the normal approximation with the tie correction (n >= 3; O(n log n) comparisons)."""
    n = len(values)
    s = 0  # sum over pairs i < j of sign(x_j - x_i): each value against the sorted earlier ones
    earlier: list[float] = []
    for v in values:
        below, above = bisect_left(earlier, v), len(earlier) - bisect_right(earlier, v)
        s += below - above
        insort(earlier, v)
    tie_term = sum(t * (t - 1) * (2 * t + 5) for t in Counter(values).values() if t > 1)
    variance = (n * (n - 1) * (2 * n + 5) - tie_term) / 18
    tau = s / (n * (n - 1) / 2)
    if variance <= 0 or s == 0:
        return tau, 1.0
    z = (s - 1 if s > 0 else s + 1) / math.sqrt(variance)  # continuity correction
    return tau, math.erfc(abs(z) / math.sqrt(2))


def sen_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Sen's slope: the median of the slopes between every pair of points (robust to outliers)."""
    slopes: list[float] = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        slopes += [(y2 - y) / (x2 - x) for x2, y2 in zip(xs[i + 1:], ys[i + 1:]) if x2 != x]
    return median(slopes) if slopes else 0.0


class Downsampled:
    """A whole run's series in bounded memory: at most ``capacity`` buckets of consecutive points.

    When the buckets are full, neighbours merge pairwise and each new bucket takes twice as many
    points, so a million-step run costs the same memory as a thousand-step one and the bucket
    means keep the series' shape for a trend test.
    """

    __slots__ = ("capacity", "count", "_width", "_buckets")

    def __init__(self, capacity: int = 512) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = capacity
        self.count = 0
        self._width = 1
        self._buckets: list[list[float]] = []  # [step sum, value sum, points]

    def add(self, step: float, value: float) -> None:
        self.count += 1
        buckets = self._buckets
        if buckets:
            bucket = buckets[-1]
            if bucket[2] < self._width:
                bucket[0] += step
                bucket[1] += value
                bucket[2] += 1
                return
        self._open(step, value)

    def extend(self, steps: Sequence[float], values: Sequence[float]) -> None:
        """:meth:`add` of each ``(step, value)`` in turn, with the same sums in the same order (a
        left fold in C per bucket instead of a Python call per point)."""
        i, n = 0, len(values)
        self.count += n
        while i < n:
            buckets = self._buckets
            bucket = buckets[-1] if buckets else None
            if bucket is not None and bucket[2] < self._width:
                take = min(self._width - bucket[2], n - i)
                bucket[0] = reduce(add, steps[i:i + take], bucket[0])
                bucket[1] = reduce(add, values[i:i + take], bucket[1])
                bucket[2] += take
                i += take
            else:
                self._open(steps[i], values[i])
                i += 1

    def _open(self, step: float, value: float) -> None:
        """A new bucket for ``(step, value)``; when there are too many, neighbours merge."""
        self._buckets.append([step, value, 1])
        if len(self._buckets) > self.capacity:
            pairs = zip(self._buckets[0::2], self._buckets[1::2])
            merged = [[a[0] + b[0], a[1] + b[1], a[2] + b[2]] for a, b in pairs]
            if len(self._buckets) % 2:
                merged.append(self._buckets[-1])
            self._buckets = merged
            self._width *= 2

    def points(self) -> tuple[list[float], list[float]]:
        """Mean step and mean value of each bucket, in order."""
        steps = [b[0] / b[2] for b in self._buckets]
        values = [b[1] / b[2] for b in self._buckets]
        return steps, values
