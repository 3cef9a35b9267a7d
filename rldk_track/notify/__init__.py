"""Alerts that reach a person while the run is still going: ``init(notify=[...])``.

``notify`` names channels -- ``"webhook"`` (a JSON POST, Slack-compatible, to the URL in
``RLDK_NOTIFY_WEBHOOK_URL``) and ``"wandb"`` (W&B's ``run.alert``: the run must record to W&B) --
or is a :class:`NotifySettings`. Without it, ``RLDK_NOTIFY`` (``webhook,wandb``) is read, with
``RLDK_NOTIFY_SEVERITY`` (default ``critical``) and ``RLDK_NOTIFY_MAX_PER_HOUR`` (default 20).
What notifies is :mod:`rldk_track.notify.policy`; how it is sent, :mod:`rldk_track.notify.notifier`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rldk_track.notify.channels import Channel, Message, TrackerChannel, WebhookChannel
from rldk_track.notify.notifier import Notifier
from rldk_track.notify.policy import NotifyPolicy
from rldk_track.redact import redact

__all__ = ["NotifySettings", "Notifier", "Message", "build_notifier", "CHANNELS"]

#: Every channel name ``notify`` takes.
CHANNELS = ("webhook", "wandb")
WEBHOOK_URL_ENV = "RLDK_NOTIFY_WEBHOOK_URL"


@dataclass(frozen=True)
class NotifySettings:
    """Which channels, which severities, how many, how long.

    ``min_severity``: the lowest severity that notifies (default ``critical``). ``max_per_hour``:
    the global rate limit. ``timeout_s``: the most the run's end waits for notifications (the
    digest among them). ``retries``: tries per notification and channel. ``webhook_url``: default
    ``RLDK_NOTIFY_WEBHOOK_URL`` (keep it out of code: the URL is the credential).
    """

    channels: tuple[str, ...] = ("webhook",)
    min_severity: str = "critical"
    max_per_hour: int = 20
    timeout_s: float = 10.0
    retries: int = 3
    webhook_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "NotifySettings | None":
        """Settings from ``RLDK_NOTIFY`` and friends, or None when it is not set."""
        channels = tuple(c.strip() for c in environ.get("RLDK_NOTIFY", "").split(",") if c.strip())
        if not channels:
            return None
        return cls(channels, environ.get("RLDK_NOTIFY_SEVERITY", "critical").strip() or "critical",
                   int(environ.get("RLDK_NOTIFY_MAX_PER_HOUR", "20")))


def settings_for(spec: str | Sequence[str] | NotifySettings | None) -> NotifySettings | None:
    """``notify=`` as settings (None: ``RLDK_NOTIFY``, else no notifications)."""
    if spec is None:
        return NotifySettings.from_env()
    if isinstance(spec, NotifySettings):
        return spec
    channels = (spec,) if isinstance(spec, str) else tuple(spec)
    return NotifySettings(channels=channels) if channels else None


def build_notifier(spec: str | Sequence[str] | NotifySettings | None, *, run_name: str, run_id: str,
                   backends: Mapping[str, Any], run_dir: Any = None) -> Notifier | None:
    """The run's notifier, or None when nothing is asked for. Fails fast (ValueError) on an
    unknown channel, a webhook without a URL, or ``wandb`` without the W&B backend."""
    settings = settings_for(spec)
    if settings is None:
        return None
    policy = NotifyPolicy(settings.min_severity, settings.max_per_hour, 3600.0)
    channels: list[Channel] = []
    for name in settings.channels:
        if name == "webhook":
            url = settings.webhook_url or os.environ.get(WEBHOOK_URL_ENV)
            if not url:
                raise ValueError(f"notify=['webhook'] needs a URL: set {WEBHOOK_URL_ENV} (or NotifySettings(webhook_url=...))")
            channels.append(WebhookChannel(url))  # 5 s a request; the run end waits timeout_s in all
        elif name in backends and callable(getattr(backends[name], "send_alert", None)):
            channels.append(TrackerChannel(name, backends[name].send_alert))
        elif name in CHANNELS:
            raise ValueError(f"notify={name!r} sends through the {name} backend: add it to backend=")
        else:
            raise ValueError(f"unknown notify channel {name!r}; choose from {', '.join(CHANNELS)}")
    def where() -> list[str]:  # asked at the digest, once the backends know where they record
        found = [redact(backend.describe()) for backend in backends.values()]
        return [*found, f"rldk-track ui --dir {run_dir}"] if run_dir is not None else found

    return Notifier(channels, policy, run_name=run_name, run_id=run_id, where=where,
                    timeout_s=settings.timeout_s, retries=settings.retries)
