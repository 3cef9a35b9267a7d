"""Trackio: the names rldk_track's trackio backend stores and its reader reads back.

Trackio keeps each project in one SQLite file in its store folder (``TRACKIO_DIR``, read once when
trackio is imported; default ``$HF_HOME/trackio``). The backend (:mod:`rldk_track.backends.trackio`)
writes an rldk_track run as the trackio run whose id is the rldk_track run id:

    metrics table   one row per Metrics record (log id :func:`log_id`), values under trackio names
    configs table   the run's config, plus rldk_track's own keys below (trackio shows them as config)
    alerts table    one trackio alert per Alert record (alert id :func:`alert_id`), level from
                    :data:`LEVELS`, the alert's JSON form on the text's last line (:data:`ALERT_JSON_PREFIX`)

The reader (:mod:`rldk_track.readers.trackio`) maps a run back through these names; alert states
and ``rldk/health`` follow :mod:`rldk_track.alerts`.
"""

from __future__ import annotations

#: Config keys that are rldk_track's own (trackio's dashboard shows config keys not starting with ``_``).
OWN_PREFIX = "rldk/"
#: A sample set: the metric-row key ``samples/<name>`` holding trackio's table value
#: (``{"_type": "trackio.table", "_value": [row dicts]}``, what ``trackio.Table`` logs).
SAMPLES_PREFIX = "samples/"
TABLE_TYPE = "trackio.table"
RUN_ID_KEY = f"{OWN_PREFIX}run_id"
PROJECT_KEY = f"{OWN_PREFIX}project"
VERSION_KEY = f"{OWN_PREFIX}version"
STATUS_KEY = f"{OWN_PREFIX}status"
HEALTH_KEY = f"{OWN_PREFIX}health"
CHECKPOINT_KEY = f"{OWN_PREFIX}checkpoint"
#: ``rldk/alert/<rule>`` = the rule's state; ``rldk/tag/<key>`` = a run tag; ``rldk/summary/<key>``
#: = a summary value.
ALERT_KEY_PREFIX = f"{OWN_PREFIX}alert/"
TAG_KEY_PREFIX = f"{OWN_PREFIX}tag/"
SUMMARY_KEY_PREFIX = f"{OWN_PREFIX}summary/"

#: Trackio's own config keys: when the run was created (ISO 8601, the dashboard's "Created"), its group.
CREATED_KEY = "_Created"
GROUP_KEY = "_Group"
#: Config keys starting with this are trackio's (its ``Run`` refuses them from users).
TRACKIO_PRIVATE_PREFIX = "_"

#: Metric keys trackio renames (``trackio.utils.RESERVED_KEYS``: they clash with the columns its
#: logs come back with) by prefixing :data:`RENAME_PREFIX`, as it does any key already starting with it.
RESERVED_METRIC_KEYS = frozenset({"project", "run", "timestamp", "step", "time", "metrics"})
RENAME_PREFIX = "__"

#: rldk_track severity -> trackio alert level (``trackio.AlertLevel`` values).
LEVELS = {"info": "info", "warning": "warn", "critical": "error"}
#: The last line of an alert's text: this prefix, then the alert's JSON form (rldk_track.alerts.alert_json).
ALERT_JSON_PREFIX = "rldk: "


def log_id(run_id: str, seq: int) -> str:
    """The metrics row id of record ``seq``: trackio ignores a row whose id it has (a resend adds nothing)."""
    return f"rldk-{run_id}-{seq}"


def alert_id(run_id: str, seq: int) -> str:
    """The alert id of alert ``seq`` (trackio ignores an alert whose id it has)."""
    return f"rldk-{run_id}-{seq}"


def alert_title(rule: str, state: str, severity: str) -> str:
    """The alert's title as trackio lists it: ``kl_spike: warning`` or ``kl_spike: cleared``."""
    return f"{rule}: {'cleared' if state == 'cleared' else severity}"
