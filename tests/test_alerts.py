"""The alert policy every tracker maps: health, the alerts/count series, the alert log's form."""

import dataclasses

from rldk_track.alerts import ALERT_FIELDS, AlertLog, alert_row, raised_alerts, rule_state, run_health
from rldk_track.records import Alert


def _alert(seq: int, rule: str, severity: str = "warning", state: str = "raised", step: int | None = None) -> Alert:
    return Alert(seq, 100.0 + seq, seq * 10 if step is None else step, rule, severity, f"{rule} {state}", state=state)


def test_health_is_the_worst_severity_still_raised():
    assert run_health({}.values()) == "ok" and run_health(["info"]) == "ok"
    assert run_health(["warning"]) == "warning" and run_health(["warning", "critical"]) == "critical"
    log = [{"rule": "a", "severity": "critical"}, {"rule": "b", "severity": "warning"}, {"rule": "a", "state": "cleared"}]
    assert raised_alerts(log) == {"b": "warning"}
    assert run_health(raised_alerts(log).values()) == "warning"


def test_the_alert_fields_are_every_field_of_an_alert_record():
    assert sorted(ALERT_FIELDS) == sorted(f.name for f in dataclasses.fields(Alert))
    row = alert_row({"rule": "kl_spike", "unknown": 1})
    assert list(row) == list(ALERT_FIELDS) and row["state"] == "raised" and row["step"] is None


def test_alerts_count_has_a_point_for_each_warning_or_critical_alert_raised_so_far():
    log = AlertLog()
    alerts = [_alert(1, "kl"), _alert(2, "report", "info"), _alert(3, "nan", "critical"), _alert(4, "kl", state="cleared"),
              _alert(5, "kl")]
    points = []
    for alert in alerts:
        log.add(alert)
        points.append(log.count_point(alert))
    assert points == [1, None, 2, None, 3]  # a cleared alert does not lower the count: it counts raises


def test_a_replayed_alert_replaces_its_own_entry_and_adds_nothing():
    log = AlertLog()
    first = _alert(1, "kl")
    assert log.add(first) is True
    assert log.add(first) is False
    assert len(log) == 1 and log.count_point(first) == 1


def test_each_rule_shows_its_latest_state_and_health_follows_the_rules_still_raised():
    log = AlertLog()
    raised, cleared = _alert(1, "nan", "critical"), _alert(2, "nan", "critical", state="cleared")
    log.add(raised)
    assert (rule_state(raised), log.health()) == ("critical", "critical")
    log.add(cleared)
    assert (rule_state(cleared), log.health()) == ("cleared", "ok")


def test_the_log_reads_back_from_its_jsonl_text_in_seq_order_skipping_a_torn_line():
    log = AlertLog()
    for alert in (_alert(3, "b"), _alert(1, "a")):
        log.add(alert)
    resumed = AlertLog.from_jsonl(log.jsonl() + '{"seq": 9, "rule": "cut sh')
    assert [entry["seq"] for entry in resumed] == [1, 3]
    assert list(resumed) == list(log) and resumed.jsonl() == log.jsonl()
