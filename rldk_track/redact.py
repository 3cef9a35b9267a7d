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
# Credentials by their shape, found anywhere inside a string (a header, a command line, a
# sentence): the part that is the secret is replaced, the rest kept. Each entry: what it is.
_TOKEN_SHAPES = [
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",  # PEM block
    r"\bsk-(?:ant-|proj-|svcacct-)?[A-Za-z0-9_\-]{16,}",  # OpenAI / Anthropic
    r"\bhf_[A-Za-z0-9]{20,}",  # Hugging Face
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{20,}",  # GitHub fine-grained
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key id
    r"\bAIza[0-9A-Za-z_\-]{35}",  # Google API key
    r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWT
    r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack
    r"\bwandb_v1_[A-Za-z0-9_]{20,}",  # W&B v1 key
]
_TOKENS = re.compile("|".join(f"(?:{shape})" for shape in _TOKEN_SHAPES))
# Where a secret follows a marker, the marker stays: ``Bearer <t>``, ``AccountKey=<k>`` (Azure),
# ``sig=<s>`` (Azure SAS in a URL), ``X-Api-Key: <k>``.
_AFTER_MARKER = re.compile(
    r"(?P<head>\b(?:Bearer|Basic|Token)\s+|\b(?:AccountKey|SharedAccessKey|sig|access_token|api_key|apikey|token)="
    r"|\b(?:x-api-key|api-key|x-auth-token)\s*[:=]\s*)(?P<secret>[^\s;&\"',]{6,})",
    re.IGNORECASE,
)
# ``--hf_token=VALUE`` / ``--password VALUE`` on a command line (a flag named like a secret).
_SECRET_FLAG = re.compile(r"(?P<head>(?:^|\s)--?(?P<name>[A-Za-z0-9_.\-]+)[= ])(?P<secret>[^\s\-][^\s]*)")


def is_secret_key(key: str) -> bool:
    if _TOKENIZER_TOKENS.search(key):
        return False
    return bool(_SECRET_KEY_WHOLE.match(key) or _SECRET_KEY.search(key))


# ``scheme://user:password@host``: the password part of a URL (tracking URIs, database URLs).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]+:)(?P<password>[^/\s@]+)(?P<tail>@)")


# A bare ``key`` (``--logger.wandb.key``) is a credential when its value looks like one.
_KEY_LIKE_VALUE = re.compile(r"^[A-Za-z0-9_\-]{20,}$")


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` (a JSON-able tree) with secret-looking entries replaced by REDACTED:
    values of secret-named keys, and inside every string (lists included) the credentials found
    by shape, after a marker (``Bearer``, ``AccountKey=``, ``sig=``), in a URL's password or as
    the value of a secret-named command-line flag (``--hf_token=...``, ``["--token", "..."]``)."""
    if key and is_secret_key(key) and value not in (None, "", False):
        return REDACTED
    if key.lower().endswith("key") and isinstance(value, str) and _KEY_LIKE_VALUE.match(value):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return _redact_argv(list(value))
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    """``text`` with every credential found in it replaced by REDACTED (see :func:`redact`)."""
    if len(text) < 6:
        return text
    text = _TOKENS.sub(REDACTED, text)
    text = _AFTER_MARKER.sub(lambda m: m["head"] + REDACTED, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}\g<tail>", text)
    if "-" in text:
        text = _SECRET_FLAG.sub(lambda m: m["head"] + REDACTED if is_secret_key(m["name"]) else m[0], text)
    return text


def _redact_argv(items: list[Any]) -> list[Any]:
    """A list's items redacted, where a secret-named flag alone (``"--hf_token"``) hides the
    item after it: the way ``sys.argv`` holds ``--hf_token hf_...``."""
    out = []
    hide_next = False
    for item in items:
        if hide_next and isinstance(item, str) and not item.startswith("-"):
            out.append(REDACTED)
        else:
            out.append(redact(item))
        hide_next = isinstance(item, str) and item.startswith("-") and "=" not in item and is_secret_key(item.lstrip("-"))
    return out


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
