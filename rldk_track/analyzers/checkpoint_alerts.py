"""Checkpoint health alerts: successive checkpoint reports turned into alerts, once per episode.

Each rule has an :class:`~rldk_track.analyzers.rule.Episode` (``clear_after=1``: one healthy
checkpoint clears it), the one episode mechanism of the metric rules, with its clear semantics: a
``cleared`` alert carries the severity of the episode it ends, and ``state`` says it is over.

- ``checkpoint_nonfinite`` (critical): a checkpoint holds NaN/Inf; cleared by a finite one.
- ``checkpoint_health`` (warning or critical): the score of a finite checkpoint is below the
  cut-offs; raised again when a warning becomes critical; cleared by an ``ok`` checkpoint (a
  non-finite one is ``checkpoint_nonfinite``'s and leaves this episode as it is).
- ``checkpoint_unreadable`` (warning): raised by the monitor for each checkpoint it cannot read.
"""

from __future__ import annotations

import time

from rldk_track.analyzers.checkpoint_report import CheckpointReport
from rldk_track.analyzers.checkpoint_score import HealthThresholds
from rldk_track.analyzers.rule import FIRING, Check, Episode, healthy, hold
from rldk_track.records import Alert

RULE_NONFINITE = "checkpoint_nonfinite"
RULE_HEALTH = "checkpoint_health"
RULE_UNREADABLE = "checkpoint_unreadable"


class CheckpointAlerts:
    """Turns successive reports into alerts, once per episode: raised when a checkpoint becomes
    unhealthy (again when it gets worse), cleared when a later one is healthy."""

    def __init__(self, thresholds: HealthThresholds = HealthThresholds()) -> None:
        self.thresholds = thresholds
        self._episodes = {RULE_NONFINITE: Episode(clear_after=1), RULE_HEALTH: Episode(clear_after=1)}

    def update(self, report: CheckpointReport, step: int) -> list[Alert]:
        """The alerts the checkpoint saved at ``step`` raises or clears (``seq=-1``)."""
        now = time.time()
        checks = {RULE_NONFINITE: self._finite(report, step), RULE_HEALTH: self._health(report, step)}
        alerts = [self._episodes[rule].alert(rule, step, now, check) for rule, check in checks.items()]
        return [alert for alert in alerts if alert is not None]

    def _finite(self, report: CheckpointReport, step: int) -> Check:
        count = float(report.nan + report.inf)
        if report.nonfinite_tensors:
            return Check(FIRING, "checkpoint/nan_count", count, 0.0, "critical",
                         f"checkpoint at step {step}: {report.issues[0]}", _action(report))
        return healthy("checkpoint/nan_count", count, 0.0, f"checkpoint at step {step} is finite again")

    def _health(self, report: CheckpointReport, step: int) -> Check:
        metric = "checkpoint/health_score"
        if report.nonfinite_tensors:
            return hold(metric)
        if report.status == "ok":
            return healthy(metric, report.score, self.thresholds.warning_below,
                           f"checkpoint at step {step} is healthy again (score {report.score:.3f})")
        critical = report.status == "critical"
        threshold = self.thresholds.critical_below if critical else self.thresholds.warning_below
        detail = "; ".join(report.issues) or "low health score"
        return Check(FIRING, metric, report.score, threshold, report.status,
                     f"checkpoint at step {step} scores {report.score:.3f}: {detail}", _action(report))


def _action(report: CheckpointReport) -> str | None:
    return report.recommendations[0] if report.recommendations else None
