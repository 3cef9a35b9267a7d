"""Read trackio runs from its local store (``TRACKIO_DIR``, as trackio read it at import) through
trackio's own storage calls: runs, metric rows, config and alerts.

What rldk_track's trackio backend writes is mapped back (names in :mod:`rldk_track.vocab.trackio`):
metric keys trackio renamed (``__step``) get their names back, ``alerts/count`` rows are left out,
config keys under ``rldk/`` give the run's tags, summary and status, and each alert's JSON form
(the last line of its text) gives back the alert. A run written by trackio itself (``trackio.log``)
reads with its scalar metrics, its config as params and its alerts by title and level.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Mapping

from rldk_track.alerts import ALERT_COUNT_METRIC
from rldk_track.normalize import flatten
from rldk_track.readers.progress import progress_bar
from rldk_track.readers.rundata import RunData, normalize_status
from rldk_track.vocab.trackio import (
    SAMPLES_PREFIX,
    TABLE_TYPE,
    ALERT_JSON_PREFIX,
    CREATED_KEY,
    LEVELS,
    OWN_PREFIX,
    PROJECT_KEY,
    RENAME_PREFIX,
    STATUS_KEY,
    SUMMARY_KEY_PREFIX,
    TAG_KEY_PREFIX,
)

_SEVERITIES = {level: severity for severity, level in LEVELS.items()}
#: The columns trackio adds to each metrics row it returns.
_ROW_COLUMNS = ("step", "timestamp")


def read_trackio(project: str, run: str | None = None, progress: bool | None = None) -> list[RunData]:
    """Every run of trackio project ``project`` (or the one whose name or id is ``run``)."""
    from trackio.sqlite_storage import SQLiteStorage

    if not SQLiteStorage.get_project_db_path(project).exists():
        known = ", ".join(SQLiteStorage.get_projects()) or "none"
        raise FileNotFoundError(f"no trackio project {project!r} in {_store()} (projects there: {known})")
    records = SQLiteStorage.get_run_records(project)
    if run is not None:
        records = [r for r in records if run in (r.get("id"), r.get("name"))]
    return [_read_run(SQLiteStorage, project, r) for r in progress_bar(records, len(records), "trackio runs", progress)]


def _store() -> str:
    from trackio import utils

    return str(utils.TRACKIO_DIR)


def _read_run(storage: Any, project: str, record: Mapping[str, Any]) -> RunData:
    run_id, name = str(record.get("id") or record.get("name")), str(record.get("name"))
    config = storage.get_run_config(project, run_id=run_id) or {}
    data = RunData(
        name=name, source=f"trackio://{project}/{run_id}", backend="trackio", run_id=run_id,
        project=str(config.get(PROJECT_KEY) or project), status=normalize_status(config.get(STATUS_KEY)),
        params=flatten({k: v for k, v in config.items() if not _own_key(k)}),
        tags={k[len(TAG_KEY_PREFIX):]: str(v) for k, v in config.items() if k.startswith(TAG_KEY_PREFIX)},
        summary={k[len(SUMMARY_KEY_PREFIX):]: v for k, v in config.items() if k.startswith(SUMMARY_KEY_PREFIX)},
        start_time=_epoch(config.get(CREATED_KEY) or record.get("created_at")),
        origin={"trackio_dir": _store(), "trackio_project": project, "trackio_run_id": run_id},
    )
    for row in storage.get_logs(project, run_id=run_id):
        values = {_original(k): float(v) for k, v in row.items()
                  if k not in _ROW_COLUMNS and _number(v) and k != ALERT_COUNT_METRIC}
        if values:
            data.add_points(int(row["step"]), values, _epoch(row.get("timestamp")) or math.nan)
        for key, value in row.items():
            if key.startswith(SAMPLES_PREFIX) and isinstance(value, dict) and value.get("_type") == TABLE_TYPE:
                table = value.get("_value") or []
                columns = list(dict.fromkeys(k for r in table for k in r))
                data.add_samples(int(row["step"]), key[len(SAMPLES_PREFIX):], columns,
                                 [[r.get(c) for c in columns] for r in table])
    alerts = [_alert(a) for a in storage.get_alerts(project, run_id=run_id)]
    for alert in sorted(alerts, key=lambda a: (a.get("seq") is None, a.get("seq") or 0, a.get("wall_time") or 0)):
        data.add_alert(**alert)
    return data


def _own_key(key: str) -> bool:
    """rldk_track's config keys and trackio's ``_Created``/``_Group``/``_Username``: not params."""
    return key.startswith(OWN_PREFIX) or key in (CREATED_KEY, "_Group", "_Username")


def _original(key: str) -> str:
    """The metric name before trackio's rename (it prefixes ``__`` to reserved keys and ``__x``)."""
    return key[len(RENAME_PREFIX):] if key.startswith(RENAME_PREFIX) else key


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _epoch(iso: Any) -> float | None:
    if not isinstance(iso, str) or not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def _alert(alert: Mapping[str, Any]) -> dict[str, Any]:
    """An alert's fields: its JSON form when rldk_track wrote it, else from trackio's columns."""
    last = (alert.get("text") or "").rsplit("\n", 1)[-1]
    if last.startswith(ALERT_JSON_PREFIX):
        try:
            entry = json.loads(last[len(ALERT_JSON_PREFIX):])
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            return entry
    return {"step": alert.get("step"), "wall_time": _epoch(alert.get("timestamp")), "rule": alert.get("title"),
            "severity": _SEVERITIES.get(alert.get("level"), "warning"), "message": alert.get("text") or "",
            "state": "raised"}

