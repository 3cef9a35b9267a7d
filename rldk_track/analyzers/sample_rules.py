"""Health rules over sample sets: what a step's completions and rewards show that the metric
means hide.

Each rule is a :class:`~rldk_track.analyzers.rule.Rule` fed ``Samples`` records instead of
``Metrics``: :meth:`SampleRule.measure` turns one set into a few statistics
(:mod:`rldk_track.analyzers.samples`), and :meth:`~rldk_track.analyzers.rule.Rule.check` judges
them, so episodes, clearing and evidence work as for every rule. A set too small to judge (fewer
than ``min_rows`` usable rows) says nothing. Each set costs one pass over its rows, on the log
thread; a run without samples costs nothing.

* ``length_hacking``: within a step the reward follows the length (Pearson correlation), or
  most completions stop at the length cap and those earn more than the rest;
* ``degenerate_outputs``: many empty completions, completions that loop (repeated word 3-grams),
  or a set that says the same thing (low distinct-2 across it);
* ``reward_outliers``: a reward far outside the step's spread (robust z), the shape of a reward
  model being exploited by a single completion.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Iterable, Mapping, Sequence

from rldk_track.analyzers.evidence import (
    LENGTH_COLUMNS,
    lengths,
    reward_column,
    text_column,
)
from rldk_track.analyzers.rule import Check, Rule, firing, healthy, hold
from rldk_track.analyzers.samples import (
    distinct_n,
    repeated_ngram_share,
    reward_length_correlation,
    reward_mad,
    reward_z,
)
from rldk_track.records import Record, Samples
from rldk_track.samples import finite_or_none

_LENGTH_ACTION = (
    "Read the longest completions below: if they pad or ramble, the reward pays for length -- add a length "
    "penalty or normalize the reward by length, compare rewards at equal length, or cap max_completion_length."
)
_DEGENERATE_ACTION = (
    "Read the completions below: raise the sampling temperature, add an entropy bonus or a repetition penalty, "
    "lower the learning rate, and check that the reward does not pay for one fixed or empty answer."
)
_OUTLIER_ACTION = (
    "Read the completion with the outlying reward: if it exploits the reward model (a format trick, a "
    "parse failure scored high), fix or clip the reward; one such completion can dominate a group's advantage."
)


class Measured(dict):
    """A sample set's statistics (a rule's ``check`` input), told apart from a metrics record's values."""


class SampleRule(Rule):
    """A rule over sample sets: :meth:`measure` a set into named statistics, :meth:`judge` them.
    Metrics records say nothing to it (``update(step, metrics)`` returns no alert)."""

    def observe(self, records: Sequence[Record]) -> list[Record]:
        """Dispatcher hook: measure and judge every ``Samples`` record of a batch."""
        alerts: list[Record] = []
        for record in records:
            if type(record) is Samples:
                alerts = self.samples.see(record, alerts)
                try:
                    values = self.measure(record)
                except (TypeError, ValueError, ZeroDivisionError):  # odd cells never stop the rule
                    values = None
                if values:
                    alerts.extend(self.update(record.step, Measured(values), record.wall_time))
        return self.samples.attach(alerts) if alerts else alerts

    def check(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        return self.judge(step, values) if isinstance(values, Measured) else ()

    @abstractmethod
    def measure(self, record: Samples) -> Mapping[str, float] | None:
        """The statistics of one set that :meth:`judge` judges (None: nothing to judge)."""

    @abstractmethod
    def judge(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        """``(subject, check)`` for the statistics of the set at ``step``."""


class _Streak:
    """How many sets in a row met a condition (a rule fires after ``patience`` of them)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def add(self, met: bool) -> int:
        self.count = self.count + 1 if met else 0
        return self.count


class LengthHacking(SampleRule):
    """Reward pays for length, seen within single steps (warning).

    Per set with at least ``min_rows`` rows that have a length and a finite reward: ``r`` is the
    Pearson correlation of reward and length; ``at_cap`` the share of rows whose length reached
    the cap (``max_length`` in the set's length unit; without it, for a token-length column, the
    set's longest length when at least 2 rows share it; characters have no cap). Fires after
    ``patience`` sets in a row with ``r >= correlation``, or with ``at_cap >= truncated`` and a
    higher mean reward at the cap than below it (a set entirely at the cap shows no such
    difference: that is ``truncation``'s to report); clears after ``clear_after`` sets with
    ``r < clear`` and ``at_cap`` below ``truncated``.
    """

    name = "length_hacking"

    def __init__(
        self,
        *,
        correlation: float = 0.7,
        clear: float = 0.4,
        truncated: float = 0.5,
        max_length: float | None = None,
        min_rows: int = 8,
        patience: int = 2,
        clear_after: int = 3,
    ) -> None:
        super().__init__(clear_after)
        if not -1 <= clear < correlation <= 1:
            raise ValueError("length_hacking: need -1 <= clear < correlation <= 1")
        if min_rows < 3 or patience < 1:
            raise ValueError("length_hacking: min_rows must be at least 3 and patience at least 1")
        self.correlation, self.clear, self.truncated = correlation, clear, truncated
        self.max_length, self.min_rows, self.patience = max_length, min_rows, patience
        self._streak = _Streak()

    def measure(self, record: Samples) -> Mapping[str, float] | None:
        columns = list(record.columns)
        reward_index = reward_column(columns)
        if reward_index is None:
            return None
        pairs = [(n, r) for n, r in zip(lengths(record, columns), (finite_or_none(row[reward_index]) for row in record.rows))
                 if n is not None and r is not None]
        if len(pairs) < self.min_rows:
            return None
        cap = self._cap([n for n, _ in pairs], token_lengths=any(c in columns for c in LENGTH_COLUMNS))
        values = {"r": reward_length_correlation([r for _, r in pairs], [n for n, _ in pairs])}
        if cap is not None:
            at_cap = [r for n, r in pairs if n >= cap]
            below = [r for n, r in pairs if n < cap]
            values["at_cap"] = len(at_cap) / len(pairs)
            values["cap"] = cap
            values["cap_pays"] = float(bool(at_cap and below) and sum(at_cap) / len(at_cap) > sum(below) / len(below))
        return values

    def _cap(self, lens: list[float], token_lengths: bool) -> float | None:
        if self.max_length is not None:
            return float(self.max_length)
        if not token_lengths:
            return None
        top = max(lens)
        return top if sum(1 for n in lens if n == top) >= 2 else None

    def judge(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        r, at_cap = values["r"], values.get("at_cap", math.nan)
        paid = r >= self.correlation
        capped = at_cap >= self.truncated and values.get("cap_pays", 0.0) > 0
        streak = self._streak.add(paid or capped)
        if streak >= self.patience:
            parts = []
            if paid:
                parts.append(f"reward and completion length correlate at r = {r:.2f} within the step")
            if capped:
                parts.append(f"{at_cap:.0%} of completions stop at the length cap ({values['cap']:.4g}) and earn "
                             "more than the rest")
            message = f"Length hacking at step {step}: " + "; ".join(parts) + f" ({streak} sampled steps in a row)"
            return [(self.name, firing(None, r if paid else at_cap, self.correlation if paid else self.truncated,
                                       message, _LENGTH_ACTION))]
        if r < self.clear and not at_cap >= self.truncated:
            return [(self.name, healthy(None, r, self.clear, f"Reward no longer follows length (r = {r:.2f})"))]
        return [(self.name, hold())]


class DegenerateOutputs(SampleRule):
    """The completions degenerate (warning).

    Per set with at least ``min_rows`` text completions: fires after ``patience`` sets in a row
    with ``empty`` or more of them empty, ``repeated`` or more of them looping (half or more of a
    completion's word 3-grams repeat an earlier one), or distinct-2 across the set at most ``distinct`` (judged only when the set has at least
    ``min_ngrams`` word 2-grams); clears after ``clear_after`` sets with none of these.
    """

    name = "degenerate_outputs"

    def __init__(
        self,
        *,
        empty: float = 0.5,
        repeated: float = 0.5,
        distinct: float = 0.1,
        min_rows: int = 8,
        min_ngrams: int = 40,
        patience: int = 2,
        clear_after: int = 3,
    ) -> None:
        super().__init__(clear_after)
        if min_rows < 1 or patience < 1:
            raise ValueError("degenerate_outputs: min_rows and patience must be at least 1")
        self.empty, self.repeated, self.distinct = empty, repeated, distinct
        self.min_rows, self.min_ngrams, self.patience = min_rows, min_ngrams, patience
        self._streak = _Streak()

    def measure(self, record: Samples) -> Mapping[str, float] | None:
        index = text_column(list(record.columns))
        if index is None:
            return None
        texts = [row[index] for row in record.rows if isinstance(row[index], str)]
        if len(texts) < self.min_rows:
            return None
        words = [t.split() for t in texts]
        ngrams = sum(max(0, len(w) - 1) for w in words)
        return {
            "empty": sum(1 for w in words if not w) / len(words),
            "repeated": sum(1 for w in words if repeated_ngram_share(w) >= 0.5) / len(words),
            "distinct": distinct_n(words) if ngrams >= self.min_ngrams else math.nan,
        }

    def judge(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        found = []
        if values["empty"] >= self.empty:
            found.append(("empty", f"{values['empty']:.0%} of completions are empty", self.empty))
        if values["repeated"] >= self.repeated:
            found.append(("repeated", f"{values['repeated']:.0%} of completions loop (repeat half their word 3-grams)",
                          self.repeated))
        if values["distinct"] <= self.distinct:  # NaN: not judged
            found.append(("distinct", f"distinct-2 across the set is {values['distinct']:.2f}", self.distinct))
        streak = self._streak.add(bool(found))
        if found and streak >= self.patience:
            what, _, threshold = found[0]
            message = f"Degenerate outputs at step {step}: " + "; ".join(f for _, f, _ in found) + \
                f" ({streak} sampled steps in a row)"
            return [(self.name, firing(None, values[what], threshold, message, _DEGENERATE_ACTION))]
        if not found:
            return [(self.name, healthy(None, values["repeated"], self.repeated, "Completions no longer degenerate"))]
        return [(self.name, hold())]


class RewardOutliers(SampleRule):
    """A few rewards far above their step's spread (warning).

    Per set with at least ``min_rows`` finite rewards whose median absolute deviation is above 0
    (a sparse 0/1 reward, where any 1 stands out, is not judged): fires when the largest robust
    z-score (:func:`rldk_track.analyzers.samples.reward_z`) is at least ``z`` and at most
    ``max_share`` of the rows score ``clear`` or more (more are a second mode of the reward, not
    outliers); clears after ``clear_after`` sets whose largest is below ``clear``. Rewards far
    *below* (format penalties) are left alone; NaN rewards are ``reward_nonfinite``'s and
    ``nonfinite``'s to report.
    """

    name = "reward_outliers"

    def __init__(self, *, z: float = 6.0, clear: float = 4.0, max_share: float = 0.125, min_rows: int = 16,
                 clear_after: int = 3) -> None:
        super().__init__(clear_after)
        if not 0 < clear < z:
            raise ValueError("reward_outliers: need 0 < clear < z")
        self.z, self.clear, self.max_share, self.min_rows = z, clear, max_share, min_rows

    def measure(self, record: Samples) -> Mapping[str, float] | None:
        index = reward_column(list(record.columns))
        if index is None:
            return None
        rewards = [row[index] for row in record.rows]
        finite = [r for r in rewards if finite_or_none(r) is not None]
        if len(finite) < self.min_rows or not reward_mad(finite) > 0:
            return None
        scores = [z for z in reward_z(finite) if z is not None]
        return {"z": max(scores), "high": float(sum(1 for z in scores if z >= self.clear)), "rows": float(len(scores))}

    def judge(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        top = values["z"]
        if top >= self.z and values["high"] <= self.max_share * values["rows"]:
            message = (f"Reward outliers at step {step}: a completion scored {top:.1f} robust z-scores above the "
                       f"step's median reward ({values['high']:.0f} of {values['rows']:.0f} rows above {self.clear:g})")
            return [(self.name, firing("reward", top, self.z, message, _OUTLIER_ACTION))]
        if top < self.clear:
            return [(self.name, healthy("reward", top, self.clear, "Rewards back within their step's spread"))]
        return [(self.name, hold("reward"))]

