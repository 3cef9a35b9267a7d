"""Alerts that reach a person: the policy on its own, then whole runs notifying a real HTTP server
on 127.0.0.1 (healthy, pathological, failing, hanging, unreachable) and W&B's offline run file."""

from __future__ import annotations

import http.server
import json
import logging
import re
import threading
import time
from pathlib import Path

import pytest

import rldk_track
from rldk_track.notify import NotifySettings
from rldk_track.notify.policy import NotifyPolicy
from rldk_track.records import Alert, from_json
from rldk_track.redact import REDACTED, redact_url

SECRET = "T000/B000/XXXXsecretXXXX"


def alert(seq: int, rule: str, severity: str = "critical", state: str = "raised", step: int = 0) -> Alert:
    return Alert(seq, 0.0, step, rule, severity, f"{rule} {state}", state=state)


# -- the policy ----------------------------------------------------------------------------------
def test_only_critical_notifies_by_default_once_per_episode():
    policy = NotifyPolicy()
    stream = [alert(0, "kl", "warning"), alert(1, "nan"), alert(2, "nan"), alert(3, "nan", state="cleared"),
              alert(4, "nan"), alert(5, "kl", "warning", "cleared")]
    assert [policy.decide(a, now=0.0) for a in stream] == [False, True, False, False, True, False]


def test_an_episode_that_escalates_notifies_at_the_escalation_and_only_then():
    policy = NotifyPolicy()
    stream = [alert(0, "kl", "warning"), alert(1, "kl", "critical"), alert(2, "kl", "critical")]
    assert [policy.decide(a, now=0.0) for a in stream] == [False, True, False]
    assert policy.digest().episodes == {"critical": 1}


def test_warning_notifies_when_asked_and_info_never_counts():
    policy = NotifyPolicy("warning")
    assert [policy.decide(a, 0.0) for a in (alert(0, "a", "info"), alert(1, "b", "warning"))] == [False, True]
    assert policy.digest().summary() == "1 warning"


def test_the_rate_limit_holds_back_episodes_past_it_and_lets_them_through_after_the_window():
    policy = NotifyPolicy(max_per_window=2, window_s=60.0)
    decided = [policy.decide(alert(i, f"rule{i}"), now=float(i)) for i in range(4)]
    assert decided == [True, True, False, False]
    assert policy.decide(alert(4, "rule4"), now=61.0)
    assert policy.digest().suppressed == ["rule2", "rule3"]


def test_a_replayed_alert_changes_nothing():
    policy = NotifyPolicy()
    assert policy.decide(alert(7, "nan"), 0.0) and not policy.decide(alert(7, "nan"), 0.0)


def test_the_digest_counts_every_episode_by_its_highest_severity():
    policy = NotifyPolicy()
    for a in (alert(0, "a", "warning"), alert(1, "a", "warning", "cleared"), alert(2, "b", "warning"),
              alert(3, "b", "critical"), alert(4, "c", "warning"), alert(5, "d", "warning")):
        policy.decide(a, 0.0)
    assert policy.digest().summary() == "3 warnings, 1 critical"


def test_urls_keep_only_where_they_point():
    assert redact_url(f"https://hooks.slack.com/services/{SECRET}") == f"https://hooks.slack.com/{REDACTED}"
    assert redact_url("http://user:pw@127.0.0.1:8080/hook?token=abc") == f"http://127.0.0.1:8080/{REDACTED}"
    assert redact_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


# -- a real receiver on 127.0.0.1 ----------------------------------------------------------------
class Receiver:
    """An HTTP server on 127.0.0.1 that records each POSTed JSON body and answers ``status``
    (``hang``: holds every request until the test ends)."""

    def __init__(self, status: int | str = 200) -> None:
        self.status = status
        self.bodies: list[dict] = []
        self.requests = 0
        self.release = threading.Event()
        self._cv = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._cv:
                    receiver.requests += 1
                    if receiver.status == 200:
                        receiver.bodies.append(json.loads(body))
                    receiver._cv.notify_all()
                if receiver.status == "hang":
                    receiver.release.wait(120)
                    return
                self.send_response(int(receiver.status))
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/{SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_requests(self, n: int, timeout: float = 60.0) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: self.requests >= n, timeout)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request):
    server = Receiver(getattr(request, "param", 200))
    yield server
    server.close()


def notify_run(tmp_path: Path, url: str, **settings) -> rldk_track.Run:
    return rldk_track.init(dir=tmp_path, run_name="watched", notify=NotifySettings(webhook_url=url, **settings))


def pathological(run: rldk_track.Run) -> None:
    for step in range(30):
        run.log({"loss": 1.0}, step=step)
    run.alert("kl_spike", "KL jumped", severity="warning", step=5, metric="kl", value=0.9, threshold=0.1)
    run.alert("nan_loss", "loss is NaN", severity="critical", step=10)
    run.alert("nan_loss", "loss is still NaN", severity="critical", step=11)  # same episode
    run.emit(Alert(-1, time.time(), 12, "nan_loss", "critical", "loss finite again", state="cleared"))
    run.alert("nan_loss", "loss is NaN again", severity="critical", step=20)  # a second episode


def test_a_pathological_run_notifies_each_critical_episode_once_and_sends_a_digest(tmp_path, receiver):
    run = notify_run(tmp_path, receiver.url)
    pathological(run)
    assert run.finish(timeout=60).complete
    kinds = [(b["rldk"]["kind"], b["rldk"].get("rule"), b["rldk"].get("step")) for b in receiver.bodies]
    assert kinds == [("alert", "nan_loss", 10), ("alert", "nan_loss", 20), ("digest", None, None)]
    first, digest = receiver.bodies[0], receiver.bodies[-1]
    assert first["text"].startswith("*[CRITICAL] nan_loss*\nloss is NaN\nrun watched")
    assert "ended: 1 warning, 2 critical — see " in digest["text"]
    assert digest["rldk"]["episodes"] == {"warning": 1, "critical": 2}


def test_warnings_notify_when_the_settings_say_so(tmp_path, receiver):
    run = notify_run(tmp_path, receiver.url, min_severity="warning")
    pathological(run)
    run.finish(timeout=60)
    assert [b["rldk"].get("rule") for b in receiver.bodies] == ["kl_spike", "nan_loss", "nan_loss", None]


def test_the_default_analyzers_notify_what_the_event_log_says_they_raised(tmp_path, receiver):
    run = rldk_track.init(dir=tmp_path, run_name="sick", analyzers="default", notify=NotifySettings(webhook_url=receiver.url))
    for step in range(150):
        run.log({"kl/mean": 0.02 + (0.8 if step == 90 else 0.0), "entropy/mean": 2.0 - (1.9 if step > 110 else 0.0),
                 "reward/mean": 0.5, "loss/total": 1.0}, step=step)
    run.finish(timeout=60)
    (log,) = (tmp_path / "events").glob("*.jsonl")
    records = [from_json(json.loads(line)) for line in log.read_text().splitlines()]  # the event log's lines
    alerts = [r for r in records if isinstance(r, Alert)]
    expected = NotifyPolicy()
    notified = [(a.rule, a.step) for a in alerts if expected.decide(a, 0.0)]
    assert notified, "the pathological run raised no critical alert"
    assert [(b["rldk"]["rule"], b["rldk"]["step"]) for b in receiver.bodies[:-1]] == notified
    assert receiver.bodies[-1]["rldk"]["kind"] == "digest"


def test_a_healthy_run_notifies_nobody(tmp_path, receiver):
    run = rldk_track.init(dir=tmp_path, run_name="fine", analyzers="default", notify=NotifySettings(webhook_url=receiver.url))
    for step in range(100):
        run.log({"kl/mean": 0.02, "entropy/mean": 2.0, "reward/mean": 0.5 + 0.001 * step, "loss/total": 1.0}, step=step)
    assert run.finish(timeout=60).complete
    assert receiver.requests == 0


def test_the_environment_turns_notifications_on(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("RLDK_NOTIFY", "webhook")
    monkeypatch.setenv("RLDK_NOTIFY_WEBHOOK_URL", receiver.url)
    run = rldk_track.init(dir=tmp_path, run_name="env")
    run.alert("nan_loss", "loss is NaN", severity="critical", step=1)
    run.finish(timeout=60)
    assert [b["rldk"]["kind"] for b in receiver.bodies] == ["alert", "digest"]


def webhook_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "could not notify" in r.getMessage()]


def assert_no_secret_logged(caplog) -> None:
    assert not [r.getMessage() for r in caplog.records if SECRET in r.getMessage()]


@pytest.mark.parametrize("receiver", [500], indirect=True)
def test_a_server_answering_500_is_retried_then_reported_once_and_training_goes_on(tmp_path, receiver, caplog):
    caplog.set_level(logging.WARNING, logger="rldk_track")
    run = notify_run(tmp_path, receiver.url, retries=3, timeout_s=60.0)
    pathological(run)
    run.log({"loss": 0.5}, step=30)  # training is unaffected
    assert run.finish(timeout=60).complete
    assert receiver.requests == 3 * 3  # two alerts and the digest, three tries each
    (warning,) = webhook_warnings(caplog)
    assert "HTTP 500" in warning and f"http://127.0.0.1:{receiver.server.server_address[1]}/{REDACTED}" in warning
    assert_no_secret_logged(caplog)


def test_an_unreachable_webhook_is_reported_once_without_its_secret(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="rldk_track")
    closed = Receiver()
    url = closed.url
    closed.close()  # nothing listens there any more
    run = notify_run(tmp_path, url, retries=2)
    pathological(run)
    assert run.finish(timeout=60).complete
    assert len(webhook_warnings(caplog)) == 1
    assert_no_secret_logged(caplog)


@pytest.mark.parametrize("receiver", ["hang"], indirect=True)
def test_a_hanging_server_never_holds_the_run_end_past_the_timeout(tmp_path, receiver, caplog):
    caplog.set_level(logging.WARNING, logger="rldk_track")
    run = notify_run(tmp_path, receiver.url, timeout_s=1.0, retries=1)
    run.alert("nan_loss", "loss is NaN", severity="critical", step=1)
    assert receiver.wait_requests(1)
    report = run.finish(timeout=60)  # the notifier gives up after its 1 s; the trackers are not held up
    assert report.complete
    assert any("dropped" in r.getMessage() for r in caplog.records)
    assert_no_secret_logged(caplog)


def test_bad_settings_fail_at_init(tmp_path, monkeypatch):
    monkeypatch.delenv("RLDK_NOTIFY_WEBHOOK_URL", raising=False)
    with pytest.raises(ValueError, match="RLDK_NOTIFY_WEBHOOK_URL"):
        rldk_track.init(dir=tmp_path, notify=["webhook"])
    with pytest.raises(ValueError, match="add it to backend="):
        rldk_track.init(dir=tmp_path, notify=["wandb"])
    with pytest.raises(ValueError, match="unknown notify channel 'pager'"):
        rldk_track.init(dir=tmp_path, notify=["pager"])
    with pytest.raises(ValueError, match=re.escape(f"not file://127.0.0.1:1/{REDACTED}")):
        rldk_track.init(dir=tmp_path, notify=NotifySettings(webhook_url="file://127.0.0.1:1/x"))
    assert not (tmp_path / "events").exists()


def test_notifications_are_sent_off_the_training_thread(tmp_path, receiver):
    threads: list[str] = []
    from rldk_track.notify.channels import WebhookChannel

    original = WebhookChannel.send

    def recording(self, message):
        threads.append(threading.current_thread().name)
        return original(self, message)

    WebhookChannel.send = recording
    try:
        run = notify_run(tmp_path, receiver.url)
        run.alert("nan_loss", "loss is NaN", severity="critical", step=1)
        run.finish(timeout=60)
    finally:
        WebhookChannel.send = original
    assert threads == ["rldk-notify", "rldk-notify"]


# -- W&B -----------------------------------------------------------------------------------------
def test_wandb_offline_run_file_records_the_alert(tmp_path):
    from rldk_track.backends.wandb_offline import find_run_files, iter_records

    # W&B may take long to start on a busy machine: the run end waits for it up to 120 s here
    run = rldk_track.init(backend="wandb", dir=tmp_path, run_name="wb",
                          notify=NotifySettings(channels=("wandb",), timeout_s=120.0))
    run.log({"loss": 1.0}, step=0)
    run.alert("nan_loss", "loss is NaN", severity="critical", step=1)
    assert run.finish(timeout=120).complete
    (run_file,) = find_run_files(tmp_path / "wandb")
    alerts = [r.alert for r in iter_records(run_file) if r.WhichOneof("record_type") == "alert"]
    assert [(a.title, a.level) for a in alerts] == [("[CRITICAL] nan_loss", "ERROR"),
                                                    ("rldk_track digest: wb", "ERROR")]
    assert alerts[0].text.startswith("loss is NaN\nrun wb")
