"""The one episode mechanism every episodic alert goes through (metric rules and checkpoint
alerts): raise once, escalate once, clear after ``clear_after`` healthy checks, and a cleared
alert that carries the severity of the episode it ends."""

from __future__ import annotations

from rldk_track.analyzers.rule import Check, MetricRule, firing, healthy, hold


class Threshold(MetricRule):
    """``loss`` above 1 is a warning, above 10 critical, below 0.5 healthy, in between held."""

    name = "loss_level"

    def __init__(self, clear_after: int = 2) -> None:
        super().__init__("loss", clear_after)

    def judge(self, step: int, key: str, value: float) -> Check:
        if value > 1.0:
            severity = "critical" if value > 10.0 else "warning"
            return firing(key, value, 1.0, f"{key} is {value}", "lower the learning rate", severity)
        if value < 0.5:
            return healthy(key, value, 0.5, f"{key} is back to {value}")
        return hold(key)


def feed(rule: Threshold, values: list[float]) -> list[tuple]:
    return [(a.step, a.severity, a.state, a.action, a.message)
            for step, value in enumerate(values) for a in rule.update(step, {"loss": value}, wall_time=float(step))]


def test_an_episode_is_raised_escalated_once_and_cleared_with_its_highest_severity():
    alerts = feed(Threshold(), [0.1, 2.0, 3.0, 20.0, 2.0, 30.0, 0.1, 0.1, 0.1])
    assert alerts == [
        (1, "warning", "raised", "lower the learning rate", "loss is 2.0"),
        (3, "critical", "raised", "lower the learning rate", "loss is 20.0"),
        (7, "critical", "cleared", None, "loss is back to 0.1"),
    ]


def test_a_held_value_restarts_the_healthy_count():
    alerts = feed(Threshold(clear_after=2), [2.0, 0.1, 0.7, 0.1, 0.1])
    assert [(step, state) for step, _, state, _, _ in alerts] == [(0, "raised"), (4, "cleared")]


def test_a_lazy_message_is_formatted_only_for_an_alert_and_a_metric_rule_may_override_check():
    """A check's message may be a function (called once the check becomes an alert); a MetricRule
    subclass with its own ``check`` is fed through it, not through MetricRule's shortcut."""
    formatted = []

    class Lazy(Threshold):
        def judge(self, step: int, key: str, value: float) -> Check:
            check = super().judge(step, key, value)
            if check.status != "healthy":
                return check
            return healthy(key, value, 0.5, lambda: formatted.append(step) or f"{key} is back to {value}")

    class Doubled(Threshold):
        def check(self, step, values):
            return [(self.name, self.judge(step, "loss", 2 * values["loss"]))]

    assert feed(Lazy(), [0.1, 0.1, 2.0, 0.1, 0.1, 0.1])[-1] == (4, "warning", "cleared", None, "loss is back to 0.1")
    assert formatted == [4]  # not the healthy records before the episode, nor the first healthy one in it
    assert [a[:3] for a in feed(Doubled(), [0.1, 0.6])] == [(1, "warning", "raised")]
