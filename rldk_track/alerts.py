"""The alert policy: what a run's alerts add up to, the same for every tracker.

A rule raises an :class:`~rldk_track.records.Alert` and may clear it later. From a run's alerts, in
``seq`` order, follow:

* the **alert log**: each alert's JSON form (:func:`alert_json`, the alert's event-log line), once
  per ``seq``, so a replayed alert adds nothing (:class:`AlertLog`);
* each **rule's state** (:func:`rule_state`): the severity of its latest alert, ``cleared`` once
  that alert clears it;
* the run's **health** (:func:`health`): the worst severity among the rules still raised, ``ok``
  when none (``info`` alerts are reports, not problems);
* the **alerts/count** series (:meth:`AlertLog.count_point`): the warning and critical alerts
  raised so far, one point at each such alert's step.

Backends only map these onto their tracker; readers rebuild the alerts table (:data:`ALERT_FIELDS`)
and the health from the stored log::

                  MLflow                      W&B                                TensorBoard
    alert log     artifact rldk/alerts.jsonl  table "alerts" (type rldk-alerts)  file rldk/alerts.jsonl
    rule state    tag rldk.alert.<rule>       summary rldk/alert/<rule>          text series alerts/<rule>
    health        tag rldk.health             summary rldk/health                (read back from the log)
    alerts/count  metric alerts/count         history key alerts/count           (not written)
    evidence      artifact rldk/alerts/       table alerts/<rule>/evidence in    a table in the alert's
                  <rule>_<step>.json, tag     the alert's history row            text alerts/<rule>
                  rldk.evidence.<rule>

An alert's ``evidence`` (:class:`~rldk_track.records.Evidence`, the sample rows that show it) is
part of its JSON form, so the alert log of every tracker, and the event log's alert line, hold it
too; readers take it from there.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, Mapping

from rldk_track.records import Alert, to_json

#: The series of warning and critical alerts raised so far (a derived series: readers leave it
#: out of a run's points).
ALERT_COUNT_METRIC = "alerts/count"

#: Every field of an alert, in the order alert tables show them (W&B's alerts table, the readers'
#: alerts frame after its ``run`` column).
ALERT_FIELDS = ("seq", "step", "wall_time", "rule", "severity", "state", "metric", "value", "threshold", "action",
                "message", "evidence")


def alert_json(alert: Alert) -> dict[str, Any]:
    """The alert's JSON form: its event-log line (``kind``, ``schema_version`` and every field)."""
    return to_json(alert, run_id="")  # the run id goes only into metrics lines


def alert_line(entry: Mapping[str, Any]) -> str:
    """One line of an ``alerts.jsonl`` file."""
    return json.dumps(entry, ensure_ascii=False, default=str) + "\n"


def alert_row(fields: Mapping[str, Any]) -> dict[str, Any]:
    """An alert as alert tables hold it: every :data:`ALERT_FIELDS` key (missing ones None, the
    state ``raised``, ``evidence`` as its JSON form, also when a table held it as JSON text);
    other keys are dropped."""
    row = {key: fields.get(key) for key in ALERT_FIELDS}
    row["state"] = row["state"] or "raised"
    evidence = row["evidence"]
    if isinstance(evidence, str):
        try:
            evidence = json.loads(evidence) if evidence else None
        except ValueError:
            evidence = None
    row["evidence"] = evidence if isinstance(evidence, Mapping) else None
    return row


def alert_cells(fields: Mapping[str, Any]) -> list[Any]:
    """An alert as a row of a tracker's table (one cell per :data:`ALERT_FIELDS` key): as
    :func:`alert_row`, with ``evidence`` as JSON text (tables hold scalars), or None."""
    row = alert_row(fields)
    if row["evidence"] is not None:
        row["evidence"] = json.dumps(row["evidence"], ensure_ascii=False, default=str)
    return list(row.values())


def rule_state(alert: Alert) -> str:
    """What a rule's latest alert says about it: its severity, or ``cleared``."""
    return "cleared" if alert.state == "cleared" else alert.severity


def raised_alerts(alerts: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Rule -> severity of the alerts still raised after ``alerts`` (JSON forms, in log order):
    a ``cleared`` alert ends its rule's episode."""
    active: dict[str, str] = {}
    for alert in alerts:
        if alert.get("state") == "cleared":
            active.pop(alert.get("rule"), None)
        else:
            active[alert.get("rule")] = alert.get("severity") or "warning"
    return active


def run_health(severities: Iterable[str]) -> str:
    """``critical`` or ``warning`` if any of ``severities`` is, else ``ok`` (``info`` alerts are
    reports, not problems)."""
    found = set(severities)
    return "critical" if "critical" in found else "warning" if "warning" in found else "ok"


def health(alerts: Iterable[Mapping[str, Any]]) -> str:
    """A run's health after ``alerts`` (JSON forms, in log order): the worst severity still raised."""
    return run_health(raised_alerts(alerts).values())


def counted(entry: Mapping[str, Any]) -> bool:
    """Whether an alert (JSON form) counts as one: raised, and a warning or critical (``info``
    alerts are end-of-run reports and notes). ``alerts/count``, the runs table's ``alerts`` and
    compare's per-metric ``alerts`` all count this way."""
    return entry.get("state", "raised") != "cleared" and entry.get("severity") != "info"


class AlertLog:
    """A run's alerts by ``seq``, as a backend keeps them to rewrite its tracker's alert log and
    derive the rest: a resumed run starts from the stored entries, a replayed alert replaces its
    own entry."""

    def __init__(self, entries: Iterable[Mapping[str, Any]] = ()) -> None:
        self._by_seq: dict[int, dict[str, Any]] = {}
        for entry in entries:
            self._by_seq[int(entry["seq"])] = dict(entry)

    @classmethod
    def from_jsonl(cls, text: str) -> "AlertLog":
        """The log stored as ``alerts.jsonl`` text; a line that does not parse is skipped."""
        entries = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                int(entry["seq"])
            except (ValueError, KeyError, TypeError):
                continue
            entries.append(entry)
        return cls(entries)

    def add(self, alert: Alert) -> bool:
        """Put ``alert`` in the log; True when its ``seq`` was not there yet."""
        new = alert.seq not in self._by_seq
        self._by_seq[alert.seq] = alert_json(alert)
        return new

    def __contains__(self, seq: object) -> bool:
        """Whether the alert with this ``seq`` is in the log."""
        return seq in self._by_seq

    def __len__(self) -> int:
        return len(self._by_seq)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The entries (JSON forms) in ``seq`` order."""
        return iter([self._by_seq[seq] for seq in sorted(self._by_seq)])

    def jsonl(self) -> str:
        """The whole log as ``alerts.jsonl`` text."""
        return "".join(alert_line(entry) for entry in self)

    def health(self) -> str:
        """The run's health after every alert in the log."""
        return health(self)

    def count_point(self, alert: Alert) -> int | None:
        """The ``alerts/count`` value at ``alert``'s step (warning and critical alerts raised up to
        its ``seq``), or None when the alert adds no point (it clears, or it is ``info``)."""
        if not counted(alert_json(alert)):
            return None
        return sum(1 for seq, entry in self._by_seq.items() if seq <= alert.seq and counted(entry))
