"""W&B: the names rldk_track's W&B backend stores and its reader reads back.

The backend (:mod:`rldk_track.backends.wandb`) logs every metric against :data:`GLOBAL_STEP`,
keeps its own summary keys under ``rldk/`` and a side-state file next to W&B's run folders; the
reader (:mod:`rldk_track.readers.wandb`) maps a run back through these names. Alert keys and
``rldk/health`` follow :mod:`rldk_track.alerts`.
"""

from __future__ import annotations

from typing import Any, TypedDict

#: The x-axis every metric is plotted against (W&B's own ``_step`` only counts rows).
GLOBAL_STEP = "global_step"
#: W&B's own row keys: the row counter and the row's time (the record's ``wall_time``).
WANDB_STEP = "_step"
WANDB_TIMESTAMP = "_timestamp"

#: W&B shows exit code 0 as Finished and anything else as Failed; its "Killed" state is set
#: only by its server (a run stopped from the UI or a sweep), so killed uses 255, the code
#: W&B's own exit hook reports for Ctrl-C. ``rldk/status`` in the summary tells them apart.
EXIT_CODES = {"success": 0, "failed": 1, "killed": 255}

#: Summary keys under this prefix are rldk_track's own (health, alerts, checkpoint, status).
OWN_PREFIX = "rldk/"
HEALTH_KEY = f"{OWN_PREFIX}health"
STATUS_KEY = f"{OWN_PREFIX}status"
CHECKPOINT_KEY = f"{OWN_PREFIX}checkpoint"
#: ``rldk/alert/<rule>`` = the rule's state; ``rldk/tag/<key>`` = the full value of a tag cut to
#: W&B's 64 characters.
ALERT_KEY_PREFIX = f"{OWN_PREFIX}alert/"
TAG_KEY_PREFIX = f"{OWN_PREFIX}tag/"

#: Artifact types: the run's artifacts and the key map; the alert log (a ``wandb.Table`` named
#: :data:`ALERTS_TABLE`, columns :data:`rldk_track.alerts.ALERT_FIELDS`); checkpoint reports.
ARTIFACT_TYPE = "rldk"
ALERTS_ARTIFACT_TYPE = "rldk-alerts"
ALERTS_TABLE = "alerts"
CHECKPOINT_ARTIFACT_TYPE = "rldk-checkpoint-health"
CHECKPOINT_FILE = "checkpoint_health.json"
#: The file in the key-map artifact (:class:`KeyMapFile`).
KEY_MAP_FILE = "wandb_key_map.json"

#: Sample sets (:class:`rldk_track.records.Samples`): a ``wandb.Table`` under the history key
#: ``samples/<name>`` in a row at the samples' ``global_step``; the row's value is W&B's
#: ``table-file`` reference to ``files/<path>`` in the run folder.
SAMPLES_PREFIX = "samples/"
TABLE_FILE_TYPE = "table-file"

#: An alert's evidence rows (:class:`rldk_track.records.Evidence`): a ``wandb.Table`` under the
#: history key :func:`evidence_key` in the alert's row at its ``global_step`` (a ``table-file``
#: like the samples'); the alert log holds them too.
EVIDENCE_SUFFIX = "/evidence"


def evidence_key(rule: str) -> str:
    """The history key of the evidence table of ``rule``'s alerts: ``alerts/<rule>/evidence``."""
    return f"alerts/{rule}{EVIDENCE_SUFFIX}"


def is_evidence_key(key: str) -> bool:
    """Whether a history or summary key (or a field of it, ``<key>.path``) is an evidence table's."""
    return key.startswith("alerts/") and (key.endswith(EVIDENCE_SUFFIX) or f"{EVIDENCE_SUFFIX}." in key)


#: The folder under W&B's ``dir`` where W&B keeps its run folders, and the side-state file.
WANDB_FOLDER = "wandb"


def side_state_name(run_id: str) -> str:
    """The side-state file of run ``run_id`` (:class:`SideStateFile`), kept in ``<dir>/wandb/``
    next to W&B's run folders."""
    return f"rldk-{run_id}.json"


class SideStateFile(TypedDict, total=False):
    """What the backend remembers across a crash that W&B cannot give back offline: rldk name ->
    W&B key for metrics and config keys, the alert log by ``seq`` (JSON forms), the run tags."""

    metric_keys: dict[str, str]
    config_keys: dict[str, str]
    alerts: dict[str, dict[str, Any]]
    tags: dict[str, str]


class KeyMapFile(TypedDict):
    """``wandb_key_map.json``: rldk name -> W&B key of the names that had to change."""

    metrics: dict[str, str]
    config: dict[str, str]
