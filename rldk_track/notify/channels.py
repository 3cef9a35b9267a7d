"""Where a notification goes: a webhook (JSON POST, Slack-compatible) or a tracker's own alert
API (W&B's ``run.alert``). A channel's ``send`` raises on failure; the notifier retries and
reports. Channels run on the notifier's thread, never on the training thread."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from rldk_track.redact import redact_url


class NotReady(Exception):
    """The channel cannot send yet (its tracker's run is still starting); the notifier waits."""


@dataclass(frozen=True)
class Message:
    """One notification: an alert episode that needs a person, or the run's digest."""

    title: str
    text: str
    severity: str
    kind: str = "alert"  # "alert" or "digest"
    fields: dict[str, Any] = field(default_factory=dict)


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> None:
        """Deliver ``message`` or raise."""

    def describe(self) -> str:
        """Where it goes, with no credential in it (for log lines)."""


class WebhookChannel:
    """A JSON POST to ``url``: ``{"text": ..., "rldk": {...}}``. ``text`` is what Slack's (and
    Mattermost's) incoming webhooks show; ``rldk`` carries the fields for other receivers."""

    name = "webhook"

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the notification webhook must be an http:// or https:// URL, not {redact_url(url)}")
        self._url = url
        self.timeout_s = timeout_s

    def send(self, message: Message) -> None:
        body = json.dumps({"text": f"*{message.title}*\n{message.text}",
                           "rldk": {"kind": message.kind, "severity": message.severity, "title": message.title,
                                    **message.fields}},
                          ensure_ascii=False, default=str).encode("utf-8")
        request = urllib.request.Request(self._url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise ConnectionError(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConnectionError(scrub(str(reason), self._url)) from None

    def describe(self) -> str:
        return f"webhook {redact_url(self._url)}"


class TrackerChannel:
    """A tracker's own alert API, reached through its backend's ``send_alert(title, text, severity)``
    (W&B: ``run.alert``, which W&B turns into an e-mail or Slack message per the user's settings).
    ``send_alert`` raises LookupError while the tracker's run is not open yet."""

    def __init__(self, name: str, send_alert: Callable[[str, str, str], None]) -> None:
        self.name = name
        self._send_alert = send_alert

    def send(self, message: Message) -> None:
        try:
            self._send_alert(message.title, message.text, message.severity)
        except LookupError as exc:  # the backend's way of saying its run is not open yet
            raise NotReady(str(exc)) from None

    def describe(self) -> str:
        return f"{self.name} alerts"


def scrub(text: str, url: str) -> str:
    """``text`` with ``url`` (a credential, for a webhook) replaced by its redacted form."""
    return text.replace(url, redact_url(url)) if url else text
