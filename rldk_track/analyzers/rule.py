"""What every rule shares: checks, episodes, and turning them into ``Alert`` records.

A rule is a small stateful detector. Fed ``(step, values)`` it looks at one or a few metric
series and returns a :class:`Check` per *subject* (usually one metric): ``firing`` when the
pathology is there, ``healthy`` when the metric is back on the safe side of the hysteresis band,
``hold`` when it is in between or the rule has too little data. An :class:`Episode` per subject
turns those checks into alerts: one ``raised`` alert when an episode starts, one more if it
escalates from warning to critical, and one ``cleared`` alert after ``clear_after`` healthy checks
in a row. So a pathology that lasts 500 steps costs two alert records, not 500. Every episodic
alert of the package goes through :class:`Episode` (the checkpoint-health alerts too), so all share
one clear semantics: a ``cleared`` alert carries the severity of the episode it ends, no action,
and ``state="cleared"``; ``state``, never ``severity``, says whether a problem is still there.

A rule is also a dispatcher *observer*: ``observe(records)`` feeds it every ``Metrics`` record of
a batch (on the log thread) and ``finish()`` lets it add end-of-run records. It also remembers the
latest ``Samples`` records it is shown, so its raised alerts carry their evidence rows
(:mod:`rldk_track.analyzers.evidence`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, ClassVar, Iterable, Mapping, NamedTuple, Sequence

from rldk_track.analyzers.evidence import SampleMemory
from rldk_track.analyzers.names import aliases, pick
from rldk_track.records import Alert, Metrics, Record, Samples

FIRING = "firing"
HEALTHY = "healthy"
HOLD = "hold"

_RANK = {"info": 0, "warning": 1, "critical": 2}


class Check(NamedTuple):
    """A rule's verdict on one subject at one step; ``message``/``action`` become the alert's.

    A named tuple (immutable), so the factories below build one in a fraction of a microsecond:
    every rule returns a few per metrics record, on the log thread."""

    status: str
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    severity: str = "warning"
    #: The text, or a function returning it, called only if the check becomes an alert: most
    #: healthy checks never do, and formatting their text would cost more than the check.
    message: str | Callable[[], str] = ""
    action: str | None = None


_new = tuple.__new__  # builds a Check from its fields without the named tuple's keyword handling


def firing(metric: str | None, value: float | None, threshold: float | None, message: str, action: str,
           severity: str = "warning") -> Check:
    return _new(Check, (FIRING, metric, value, threshold, severity, message, action))


def healthy(metric: str | None, value: float | None, threshold: float | None,
            message: str | Callable[[], str]) -> Check:
    return _new(Check, (HEALTHY, metric, value, threshold, "warning", message, None))


def hold(metric: str | None = None) -> Check:
    return _new(Check, (HOLD, metric, None, None, "warning", "", None))


class Episode:
    """Raise once, escalate once, clear after ``clear_after`` consecutive healthy checks."""

    __slots__ = ("clear_after", "severity", "_healthy_streak")

    def __init__(self, clear_after: int) -> None:
        self.clear_after = clear_after
        self.severity: str | None = None  # None while no episode is open
        self._healthy_streak = 0

    def update(self, check: Check) -> str | None:
        """``"raised"``, ``"cleared"`` or None (nothing to report) after ``check``."""
        if check.status == FIRING:
            self._healthy_streak = 0
            if self.severity is None or _RANK[check.severity] > _RANK[self.severity]:
                self.severity = check.severity
                return "raised"
            return None
        if check.status == HEALTHY and self.severity is not None:
            self._healthy_streak += 1
            if self._healthy_streak >= self.clear_after:
                self._healthy_streak = 0
                self.severity = None
                return "cleared"
            return None
        self._healthy_streak = 0
        return None

    def alert(self, rule: str, step: int, wall_time: float, check: Check) -> Alert | None:
        """:meth:`update` with ``check``, as the alert to log (``seq=-1``), or None. A raised alert
        has the check's severity and action; a cleared one the severity of the episode it ends
        (the highest it reached) and no action. Both take message, metric, value and threshold
        from ``check``."""
        severity = self.severity
        state = self.update(check)
        if state is None:
            return None
        raised = state == "raised"
        return Alert(
            seq=-1, wall_time=wall_time, step=step, rule=rule,
            severity=check.severity if raised else severity or "warning",
            message=check.message if isinstance(check.message, str) else check.message(),
            metric=check.metric, value=check.value, threshold=check.threshold,
            action=check.action if raised else None, state=state,
        )


class Rule(ABC):
    """Base of the metric-stream rules. Subclasses set ``name`` and implement :meth:`check`."""

    name: ClassVar[str]
    #: True for rules that watch several independent conditions: each gets its own alert name,
    #: ``<name>/<subject>`` (trackers keep one alert state per name, so the conditions of one rule
    #: must not raise and clear each other's).
    per_subject_alerts: ClassVar[bool] = False

    def __init__(self, clear_after: int) -> None:
        if clear_after < 1:
            raise ValueError(f"{self.name}: clear_after must be at least 1")
        self.clear_after = clear_after
        self._episodes: dict[str, Episode] = {}
        #: subject -> the steps at which an episode was raised (or escalated), for end-of-run reports.
        self.raised_at: dict[str, list[int]] = {}
        #: The latest sample sets, for the evidence on this rule's alerts.
        self.samples = SampleMemory()

    @abstractmethod
    def check(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        """``(subject, check)`` for each subject this record says something about."""

    def update(self, step: int, values: Mapping[str, float], wall_time: float = 0.0) -> list[Alert]:
        """Feed one metrics record; return the alerts it raises or clears (``seq=-1``)."""
        alerts: list[Alert] = []
        episodes = self._episodes
        for subject, check in self.check(step, values):
            episode = episodes.get(subject)
            if episode is None:
                episode = episodes[subject] = Episode(self.clear_after)
            elif episode.severity is None and check.status != FIRING:
                continue  # no episode open and none starting: the check changes nothing
            self._report(subject, episode, check, step, wall_time, alerts)
        return alerts

    def _report(self, subject: str, episode: Episode, check: Check, step: int, wall_time: float,
                alerts: list[Alert]) -> None:
        """Add to ``alerts`` what ``check`` makes of ``subject``'s episode, noting raised ones."""
        alert = episode.alert(self.alert_name(subject), step, wall_time, check)
        if alert is not None:
            alerts.append(alert)
            if alert.state == "raised":
                self.raised_at.setdefault(subject, []).append(step)

    def quiet(self, subject: str) -> bool:
        """True while no episode of ``subject`` is open. Then only a firing check changes anything
        (:meth:`update` drops the others), so a rule may skip the work of judging what can only
        come out healthy or hold."""
        episode = self._episodes.get(subject)
        return episode is None or episode.severity is None

    def observe(self, records: Sequence[Record]) -> list[Record]:
        """Dispatcher hook: feed every ``Metrics`` record of a batch; remember its ``Samples``."""
        alerts: list[Record] = []
        for record in records:
            if type(record) is Metrics:
                alerts.extend(self.update(record.step, record.values, record.wall_time))
            elif type(record) is Samples:
                alerts = self.samples.see(record, alerts)
        return self.samples.attach(alerts) if alerts else alerts

    def finish(self) -> list[Record]:
        """Dispatcher hook at the end of the run; rules with a report override it."""
        return []

    def alert_name(self, subject: str) -> str:
        """The ``rule`` field of the alerts about ``subject``."""
        return f"{self.name}/{subject}" if self.per_subject_alerts else self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MetricRule(Rule):
    """A rule about one metric (read under its canonical name or any alias, see ``names``):
    subclasses implement :meth:`judge`, called with each finite value of it."""

    def __init__(self, metric: str, clear_after: int) -> None:
        super().__init__(clear_after)
        self._names = aliases(metric)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "check" in cls.__dict__ and "update" not in cls.__dict__:
            cls.update = Rule.update  # a subclass with its own check takes the general path

    @abstractmethod
    def judge(self, step: int, key: str, value: float) -> Check:
        """The verdict on ``value``, logged as ``key`` at ``step``."""

    def check(self, step: int, values: Mapping[str, float]) -> Iterable[tuple[str, Check]]:
        found = pick(values, self._names)
        if found is None:
            return ()
        return [(self.name, self.judge(step, *found))]

    def update(self, step: int, values: Mapping[str, float], wall_time: float = 0.0) -> list[Alert]:
        """:meth:`Rule.update` for the one subject, without the per-subject loop: most rules are of
        this kind, and each sees every record."""
        found = pick(values, self._names)
        if found is None:
            return []
        check = self.judge(step, found[0], found[1])
        episode = self._episodes.get(self.name)
        if episode is None:
            episode = self._episodes[self.name] = Episode(self.clear_after)
        elif episode.severity is None and check.status != FIRING:
            return []
        alerts: list[Alert] = []
        self._report(self.name, episode, check, step, wall_time, alerts)
        return alerts
