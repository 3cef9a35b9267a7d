"""Evidence on alerts: the few sample rows that show what a rule saw.

Every rule is shown the run's ``Samples`` records on the same feed as its metrics and keeps the
latest ones (:class:`SampleMemory`: the last :data:`KEEP_PER_NAME` sets of each name, at most
:data:`MAX_NAMES` names, references to the logged records, never copies). When it raises an
alert, :meth:`SampleMemory.attach` puts the :data:`EVIDENCE_ROWS` most telling rows of the latest
sample set at or before the alert's step on it (:class:`~rldk_track.records.Evidence`), chosen
by the measure :data:`EVIDENCE_BY` names for the rule:

=========================================================  ===================  ===================================
rule (alert name, or its part before ``/``)                 by                   rows first
=========================================================  ===================  ===================================
``truncation``, ``reward_hacking/length``, ``length_hacking``  ``length``        longest completions
``reward_hacking/kl_entropy``, ``reward_shift``              ``reward``           highest reward
``reward_hacking/component``                                 ``reward``           highest ``reward/<fn>`` of the rising function
``entropy_collapse``, ``degenerate_outputs``                 ``repetition``       most repeated text
``reward_nonfinite``, ``nonfinite``                          ``nonfinite_reward`` rows whose reward is NaN or Inf
``reward_outliers``                                          ``reward_outlier``   highest robust z of the reward
=========================================================  ===================  ===================================

A row's length is its ``completion_length``/``length``/``num_tokens`` cell when the set has one
(tokens), else the characters of its completion text; its repetition is the share of its word
3-grams that repeat an earlier one, ties broken by how many rows of the set have the same text.
Cleared alerts, and rules not in the table, carry no evidence. Pure: no tracker, no clock.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, deque
from typing import Any, Callable, Sequence

from rldk_track.analyzers.samples import repeated_ngram_share, reward_z
from rldk_track.records import Alert, Evidence, Record, Samples
from rldk_track.samples import TRUNCATION_MARK, finite_or_none

#: Rows an alert's evidence holds.
EVIDENCE_ROWS = 3
#: Characters kept of a text cell in evidence (the full cell is in the sample set's row).
EVIDENCE_CELL_CHARS = 1000
#: Sample sets remembered per name, and names remembered (the oldest name is forgotten first).
KEEP_PER_NAME = 2
MAX_NAMES = 8

#: Which measure picks each rule's evidence rows (see the module docstring).
EVIDENCE_BY: dict[str, str] = {
    "truncation": "length",
    "reward_hacking/length": "length",
    "length_hacking": "length",
    "reward_hacking/kl_entropy": "reward",
    "reward_hacking/component": "reward",
    "reward_shift": "reward",
    "entropy_collapse": "repetition",
    "degenerate_outputs": "repetition",
    "reward_nonfinite": "nonfinite_reward",
    "nonfinite": "nonfinite_reward",
    "reward_outliers": "reward_outlier",
}

#: Columns read as a completion's text, and as its length in tokens, in order of preference.
TEXT_COLUMNS = ("completion", "response", "output", "text")
LENGTH_COLUMNS = ("completion_length", "length", "response_length", "num_tokens", "completion_tokens")


def evidence_by(rule: str) -> str | None:
    """The measure that picks ``rule``'s evidence (the alert name, else its part before ``/``)."""
    return EVIDENCE_BY.get(rule) or EVIDENCE_BY.get(rule.split("/", 1)[0])


class SampleMemory:
    """The latest sample sets a rule was shown, to attach evidence to its alerts."""

    __slots__ = ("_sets",)

    def __init__(self) -> None:
        self._sets: dict[str, deque[Samples]] = {}

    def see(self, record: Samples, alerts: list[Record] | None = None) -> list[Record]:
        """Remember ``record`` (sets without rows are not worth showing). ``alerts`` (those a
        batch raised so far) whose step is before ``record``'s get their evidence first, from the
        sets they could be shown before this one pushes an old one out; returns them."""
        alerts = [self._with_evidence(a) if a.step < record.step else a for a in alerts or ()]
        if not record.rows:
            return alerts
        sets = self._sets.get(record.name)
        if sets is None:
            if len(self._sets) >= MAX_NAMES:
                del self._sets[next(iter(self._sets))]
            sets = self._sets[record.name] = deque(maxlen=KEEP_PER_NAME)
        sets.append(record)
        return alerts

    def latest(self, step: int) -> list[Samples]:
        """The remembered sets at or before ``step``, latest step first."""
        found = [s for sets in self._sets.values() for s in sets if s.step <= step]
        return sorted(found, key=lambda s: s.step, reverse=True)

    def attach(self, alerts: Sequence[Record]) -> list[Record]:
        """``alerts`` with evidence on each raised alert whose rule has some to show."""
        return [self._with_evidence(a) for a in alerts]

    def _with_evidence(self, alert: Record) -> Record:
        if type(alert) is not Alert or alert.state != "raised" or alert.evidence is not None or not self._sets:
            return alert
        evidence = self.evidence(alert)
        return alert if evidence is None else dataclasses.replace(alert, evidence=evidence)

    def evidence(self, alert: Alert) -> Evidence | None:
        """The evidence for ``alert`` from the latest set at or before its step that has rows to
        show by the rule's measure, or None."""
        by = evidence_by(alert.rule)
        if by is None:
            return None
        for record in self.latest(alert.step):
            evidence = choose(record, by, alert.metric)
            if evidence is not None:
                return evidence
        return None


def choose(record: Samples, by: str, metric: str | None = None, rows: int = EVIDENCE_ROWS) -> Evidence | None:
    """The ``rows`` most telling rows of ``record`` by the measure ``by`` (see the module
    docstring), or None when the set has nothing to measure (no text, no reward...). ``metric``
    (the alert's) picks a function's reward column, e.g. ``reward/<fn>/mean`` -> ``reward/<fn>``."""
    columns = list(record.columns)
    measure = _MEASURES[by]
    scores = measure(record, columns, metric)
    ranked = sorted((i for i, s in enumerate(scores) if s is not None), key=lambda i: scores[i], reverse=True)
    if not ranked:
        return None
    label = _LABELS.get(by)
    extra = label is not None and label not in columns
    out_columns = ("row", *columns, *((label,) if extra else ()))
    out_rows = []
    for i in ranked[:rows]:
        cells = [_short(cell) for cell in record.rows[i]]
        out_rows.append((i, *cells, *((_plain(scores[i]),) if extra else ())))
    return Evidence(record.name, int(record.step), by, out_columns, tuple(out_rows))


def text_column(columns: Sequence[str]) -> int | None:
    """Index of the completion text column (:data:`TEXT_COLUMNS`), or None."""
    return next((columns.index(c) for c in TEXT_COLUMNS if c in columns), None)


def lengths(record: Samples, columns: Sequence[str]) -> list[float | None]:
    """Each row's length: its length cell (tokens) when the set has a length column, else the
    characters of its completion text; None where neither is there."""
    for name in LENGTH_COLUMNS:
        if name in columns:
            index = columns.index(name)
            return [finite_or_none(row[index]) for row in record.rows]
    index = text_column(columns)
    if index is None:
        return [None] * len(record.rows)
    return [float(len(row[index])) if isinstance(row[index], str) else None for row in record.rows]


def reward_column(columns: Sequence[str], metric: str | None = None) -> int | None:
    """Index of the reward column: ``reward/<fn>`` when ``metric`` names a function's reward
    (``reward/<fn>/mean``, ``rewards/<fn>/mean``, ``reward/<fn>/nonfinite_frac``) and the set
    has it, else ``reward``; None when the set has neither."""
    if metric:
        parts = metric.split("/")
        if len(parts) == 3 and parts[0] in ("reward", "rewards") and f"reward/{parts[1]}" in columns:
            return columns.index(f"reward/{parts[1]}")
    return columns.index("reward") if "reward" in columns else None


def _by_length(record: Samples, columns: list[str], metric: str | None) -> list[Any]:
    return lengths(record, columns)


def _by_reward(record: Samples, columns: list[str], metric: str | None) -> list[Any]:
    index = reward_column(columns, metric)
    return [None] * len(record.rows) if index is None else [finite_or_none(row[index]) for row in record.rows]


def _by_repetition(record: Samples, columns: list[str], metric: str | None) -> list[Any]:
    index = text_column(columns)
    if index is None:
        return [None] * len(record.rows)
    texts = [row[index] if isinstance(row[index], str) else None for row in record.rows]
    same = Counter(t for t in texts if t is not None)
    return [None if t is None else (repeated_ngram_share(t), same[t] - 1) for t in texts]


def _by_nonfinite_reward(record: Samples, columns: list[str], metric: str | None) -> list[Any]:
    wanted = reward_column(columns, metric)
    indexes = [wanted] if wanted is not None and metric else [
        i for i, c in enumerate(columns) if c == "reward" or c.startswith("reward/")]
    return [1.0 if any(_nonfinite(row[i]) for i in indexes) else None for row in record.rows]


def _by_reward_outlier(record: Samples, columns: list[str], metric: str | None) -> list[Any]:
    index = reward_column(columns, metric)
    if index is None:
        return [None] * len(record.rows)
    return reward_z([row[index] for row in record.rows])


def _nonfinite(cell: Any) -> bool:
    return isinstance(cell, float) and not math.isfinite(cell)


_MEASURES: dict[str, Callable[[Samples, list[str], str | None], list[Any]]] = {
    "length": _by_length,
    "reward": _by_reward,
    "repetition": _by_repetition,
    "nonfinite_reward": _by_nonfinite_reward,
    "reward_outlier": _by_reward_outlier,
}
#: The column that shows each measure's value in the evidence (added when the set lacks it).
_LABELS = {"length": "length", "repetition": "repeated_3grams", "reward_outlier": "reward_z"}


def _plain(score: Any) -> Any:
    """A measure as a table cell: the repeated-n-gram share of a repetition score; inf as None."""
    if isinstance(score, tuple):
        score = score[0]
    return score if isinstance(score, float) and math.isfinite(score) else None


def _short(cell: Any) -> Any:
    if isinstance(cell, str) and len(cell) > EVIDENCE_CELL_CHARS:
        return cell[:EVIDENCE_CELL_CHARS] + TRUNCATION_MARK.format(total=len(cell))
    return cell
