"""Which alerts reach a person: a pure function of the alert stream and a clock.

* An alert **episode** of a rule starts with a ``raised`` alert while the rule is not raised, and
  ends with a ``cleared`` alert. An episode notifies at most once: the first time it has a severity
  at or above ``min_severity`` (an episode that starts as a warning and escalates to critical
  notifies at the escalation when only critical notifies). A ``cleared`` alert never notifies.
* A global **rate limit**: at most ``max_per_window`` notifications in any ``window_s`` seconds; an
  episode over the limit is counted as suppressed and named in the digest instead.
* The **digest** at the end counts every warning and critical episode of the run, notified or not.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from rldk_track.records import SEVERITIES, Alert

_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}


@dataclass
class Digest:
    """What a run's alerts added up to, for the end-of-run message."""

    episodes: Counter = field(default_factory=Counter)  # severity -> episodes (highest severity)
    notified: int = 0
    suppressed: list[str] = field(default_factory=list)  # rules the rate limit held back

    def worth_sending(self) -> bool:
        """True when any warning or critical episode happened (a healthy run gets no digest)."""
        return bool(self.episodes["warning"] or self.episodes["critical"])

    def summary(self) -> str:
        """``3 warnings, 1 critical`` (most severe last, as people read it)."""
        parts = []
        for severity in ("info", "warning", "critical"):
            n = self.episodes[severity]
            if n and severity != "info":
                parts.append(f"{n} {severity}" + ("s" if n > 1 and severity == "warning" else ""))
        return ", ".join(parts) or "no warnings"


class NotifyPolicy:
    """Feed it every alert in ``seq`` order with the time it was seen (monotonic seconds); it says
    which ones to send."""

    def __init__(self, min_severity: str = "critical", max_per_window: int = 20, window_s: float = 3600.0) -> None:
        if min_severity not in SEVERITIES:
            raise ValueError(f"min_severity must be one of {', '.join(SEVERITIES)}, not {min_severity!r}")
        if max_per_window < 1 or window_s <= 0:
            raise ValueError("the rate limit needs max_per_window >= 1 and window_s > 0")
        self.min_rank = _RANK[min_severity]
        self.max_per_window = max_per_window
        self.window_s = window_s
        self._episodes: dict[str, dict[str, object]] = {}  # rule -> {"severity", "notified"}
        self._sent: deque[float] = deque()
        self._digest = Digest()
        self._seen: set[int] = set()

    def decide(self, alert: Alert, now: float) -> bool:
        """Whether ``alert`` is sent now; updates the episodes and the digest."""
        if alert.seq in self._seen and alert.seq >= 0:  # a replayed alert changes nothing
            return False
        self._seen.add(alert.seq)
        if alert.state == "cleared":
            self._end(alert.rule)
            return False
        episode = self._episodes.get(alert.rule)
        if episode is None:
            episode = self._episodes[alert.rule] = {"severity": alert.severity, "notified": False}
        elif _RANK.get(alert.severity, 0) > _RANK.get(str(episode["severity"]), 0):
            episode["severity"] = alert.severity
        if episode["notified"] or _RANK.get(alert.severity, 0) < self.min_rank:
            return False
        episode["notified"] = True
        while self._sent and now - self._sent[0] >= self.window_s:
            self._sent.popleft()
        if len(self._sent) >= self.max_per_window:
            self._digest.suppressed.append(alert.rule)
            return False
        self._sent.append(now)
        self._digest.notified += 1
        return True

    def _end(self, rule: str) -> None:
        episode = self._episodes.pop(rule, None)
        if episode is not None:
            self._digest.episodes[str(episode["severity"])] += 1

    def digest(self) -> Digest:
        """The run's digest: ended episodes and those still raised."""
        digest = Digest(Counter(self._digest.episodes), self._digest.notified, list(self._digest.suppressed))
        for episode in self._episodes.values():
            digest.episodes[str(episode["severity"])] += 1
        return digest
