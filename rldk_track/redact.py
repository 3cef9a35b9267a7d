"""Keep credentials out of every tracker: redact config keys and values that look like secrets.

Applied by :class:`~rldk_track.run.Run` before a record is queued, so neither the local event log
nor any backend ever sees the secret.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

REDACTED = "***REDACTED***"

# A key is secret when its last word is one of these (``hub_token``, ``WANDB_API_KEY``,
# ``db.password``), but tokenizer settings such as ``pad_token`` or ``max_new_tokens`` are not.
_SECRET_KEY = re.compile(
    r"(?:^|[_.\-/ ])(?:api[_\-]?key|apikey|token|auth[_\-]?token|access[_\-]?token|password|passwd|"
    r"secret|secret[_\-]?key|access[_\-]?key|private[_\-]?key|credentials?)$",
    re.IGNORECASE,
)
_SECRET_KEY_WHOLE = re.compile(r"^(?:token|password|passwd|secret|api[_\-]?key|credentials?)$", re.IGNORECASE)
_TOKENIZER_TOKENS = re.compile(
    r"(?:^|[_.\-/])(?:pad|eos|bos|unk|sep|cls|mask|start|end|chat|image|audio|video|boi|eoi|think)[_\-]?token$",
    re.IGNORECASE,
)
# Values that are credentials whatever their key: Hugging Face, OpenAI/Anthropic-style, GitHub,
# AWS access keys, Slack, W&B (40 hex chars after "local-" or bare are too ambiguous to catch).
_SECRET_VALUE = re.compile(
    r"^(?:hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|"
    r"github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9\-]{10,})$"
)


def is_secret_key(key: str) -> bool:
    if _TOKENIZER_TOKENS.search(key):
        return False
    return bool(_SECRET_KEY_WHOLE.match(key) or _SECRET_KEY.search(key))


# ``scheme://user:password@host``: the password part of a URL (tracking URIs, database URLs).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]+:)(?P<password>[^/\s@]+)(?P<tail>@)")


# A bare ``key`` (``--logger.wandb.key``) is a credential when its value looks like one.
_KEY_LIKE_VALUE = re.compile(r"^[A-Za-z0-9_\-]{20,}$")


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` (a JSON-able tree) with secret-looking entries replaced by REDACTED."""
    if key and is_secret_key(key) and value not in (None, "", False):
        return REDACTED
    if key.lower().endswith("key") and isinstance(value, str) and _KEY_LIKE_VALUE.match(value):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        if _SECRET_VALUE.match(value.strip()):
            return REDACTED
        if "://" in value:
            return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}\g<tail>", value)
    return value


def redact_url(url: str) -> str:
    """``url`` with everything that can hold a credential hidden: user info, path and query
    (a Slack or Discord webhook's secret is its path). Scheme, host and port stay, to say where."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return REDACTED
    if not parts.scheme or not host:
        return REDACTED
    hidden = "/" + REDACTED if (parts.path.strip("/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{host}{port}{hidden}"
