"""The notifier: an observer of the run's records (on the dispatcher's log thread) that picks the
alerts a person must hear about (:class:`~rldk_track.notify.policy.NotifyPolicy`) and hands them
to its own thread, which sends them to every channel.

Guarantees: nothing runs on the training thread; ``observe`` only decides and enqueues; a channel
that fails is retried ``retries`` times with backoff, then reported once (its URL redacted) and
the notification dropped; at the run's end ``finish`` queues the digest and waits for the queue
to drain for at most ``timeout_s``; nothing raises into training.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Iterable, Sequence

from rldk_track.notify.channels import Channel, Message, NotReady
from rldk_track.notify.policy import Digest, NotifyPolicy
from rldk_track.records import Alert, Record

log = logging.getLogger("rldk_track")

_STOP = object()
#: How long a notification waits for a tracker whose run is still starting (W&B takes seconds).
READY_WAIT_S = 120.0


class Notifier:
    """Observer that turns alert episodes into notifications; see the module docstring."""

    def __init__(self, channels: Sequence[Channel], policy: NotifyPolicy, *, run_name: str, run_id: str,
                 where: Callable[[], Sequence[str]] = list, timeout_s: float = 10.0, retries: int = 3,
                 retry_initial_s: float = 0.5) -> None:
        self.channels = list(channels)
        self.policy = policy
        self.run_name, self.run_id = run_name, run_id
        self.where = where
        self.timeout_s = timeout_s
        self.retries = retries
        self.retry_initial_s = retry_initial_s
        self._queue: queue.Queue[object] = queue.Queue()
        self._failed: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="rldk-notify", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"Notifier({', '.join(c.describe() for c in self.channels)})"

    # -- the log thread ------------------------------------------------------------------------
    def observe(self, records: Sequence[Record]) -> Iterable[Record]:
        """Queue a notification for each alert that starts (or escalates into) a notifying episode."""
        now = time.monotonic()
        for record in records:
            if isinstance(record, Alert) and self.policy.decide(record, now):
                self._queue.put(self._alert_message(record))
        return ()

    def finish(self) -> Iterable[Record]:
        """Queue the digest, then wait for the queue to drain, at most ``timeout_s``."""
        digest = self.policy.digest()
        if digest.worth_sending():
            self._queue.put(self._digest_message(digest))
        self._queue.put(_STOP)
        self._thread.join(self.timeout_s)
        if self._thread.is_alive():
            log.warning("rldk_track: notifications not sent within %.0f s at the end of the run were dropped (%s)",
                        self.timeout_s, ", ".join(c.describe() for c in self.channels))
        return ()

    # -- messages ------------------------------------------------------------------------------
    def _alert_message(self, alert: Alert) -> Message:
        detail = f" ({alert.metric} = {alert.value:g}, threshold {alert.threshold:g})" if (
            alert.metric and isinstance(alert.value, (int, float)) and isinstance(alert.threshold, (int, float))) else ""
        text = f"{alert.message}{detail}\nrun {self.run_name} ({self.run_id}), step {alert.step}"
        if alert.action:
            text += f"\nsuggested: {alert.action}"
        fields = {"run": self.run_name, "run_id": self.run_id, "rule": alert.rule, "step": alert.step,
                  "metric": alert.metric, "value": alert.value, "threshold": alert.threshold, "message": alert.message}
        return Message(f"[{alert.severity.upper()}] {alert.rule}", text, alert.severity, "alert", fields)

    def _digest_message(self, digest: Digest) -> Message:
        summary = digest.summary()
        try:
            where = [str(w) for w in self.where()]
        except Exception:  # a description is a nicety; the digest goes out without it
            where = []
        see = f" — see {'; '.join(where)}" if where else ""
        text = f"run {self.run_name} ({self.run_id}) ended: {summary}{see}"
        suppressed = digest.suppressed
        if suppressed:
            text += f"\nnot notified (rate limit): {', '.join(sorted(set(suppressed)))}"
        severity = "critical" if digest.episodes["critical"] else "warning"
        fields = {"run": self.run_name, "run_id": self.run_id, "episodes": dict(digest.episodes),
                  "notified": digest.notified, "suppressed": suppressed, "where": where}
        return Message(f"rldk_track digest: {self.run_name}", text, severity, "digest", fields)

    # -- the notifier thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            for channel in self.channels:
                self._send(channel, item)  # type: ignore[arg-type]

    def _send(self, channel: Channel, message: Message) -> None:
        delay, attempt = self.retry_initial_s, 0
        not_ready_until = time.monotonic() + READY_WAIT_S
        while True:
            try:
                channel.send(message)
                return
            except NotReady as exc:  # the tracker's run is still starting: wait, it is not a failure
                if time.monotonic() < not_ready_until:
                    time.sleep(0.2)
                    continue
                error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a channel's failure never leaves this thread
                error = f"{type(exc).__name__}: {str(exc)[:300]}"
            attempt += 1
            if attempt >= self.retries:
                break
            time.sleep(delay)
            delay *= 2
        if channel.name not in self._failed:
            self._failed.add(channel.name)
            log.warning("rldk_track: could not notify through %s after %d tries (%s); this notification is dropped "
                        "and later failures of this channel are not reported", channel.describe(), self.retries, error)
