"""Read W&B runs: offline run directories (through W&B's run-file parser,
:mod:`rldk_track.backends.wandb_offline`) and online runs through ``wandb.Api()``.

What rldk_track's W&B backend writes is mapped back (names in :mod:`rldk_track.vocab.wandb`):
history rows are points at their ``global_step`` (W&B's own ``_step`` only counts rows) and
``_timestamp``; names the backend had to adapt are mapped back through its side-state file
(``<dir>/wandb/rldk-<run_id>.json``) or, online, its ``wandb_key_map.json`` artifact; run tags
``key=value`` become tags; ``rldk/*`` summary keys hold health, alerts and the status. Alerts come
from the side-state file or the ``alerts`` table artifact; failing both, from the summary's
``rldk/alert/<rule>`` (severity only, no step). The ``alerts/count`` series (derived from the
alerts) is left out of the points. W&B's summary also repeats each metric's last value, so only
keys that are not history metrics stay in the run's summary.

A run not written by rldk_track (no ``global_step``) reads at W&B's ``_step``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

from rldk_track.alerts import ALERT_COUNT_METRIC
from rldk_track.backends import wandb_offline
from rldk_track.normalize import flatten
from rldk_track.readers.progress import progress_bar
from rldk_track.readers.rundata import RunData, normalize_status
from rldk_track.vocab.wandb import (
    ALERT_KEY_PREFIX,
    ALERTS_ARTIFACT_TYPE,
    ALERTS_TABLE,
    ARTIFACT_TYPE,
    EXIT_CODES,
    GLOBAL_STEP,
    KEY_MAP_FILE,
    OWN_PREFIX,
    SAMPLES_PREFIX,
    STATUS_KEY,
    TABLE_FILE_TYPE,
    TAG_KEY_PREFIX,
    WANDB_STEP,
    WANDB_TIMESTAMP,
    KeyMapFile,
    SideStateFile,
    is_evidence_key,
    side_state_name,
)

#: W&B exit codes as rldk_track statuses (any other code: failed).
EXIT_STATUS = {code: status for status, code in EXIT_CODES.items()}


log = logging.getLogger("rldk_track")

def is_offline_source(path: Path) -> bool:
    """A W&B run file, an ``offline-run-*``/``run-*`` directory, or a folder holding them."""
    if path.is_file():
        return path.suffix == ".wandb"
    return any(path.glob("run-*.wandb")) or any(path.glob("*/run-*.wandb")) or any(path.glob("wandb/*/run-*.wandb"))


def read_wandb_offline(source: str | Path, progress: bool | None = None) -> list[RunData]:
    """Every W&B run (by run id, resumed segments merged) under ``source``."""
    segments = wandb_offline.segments_by_run(source)
    runs = []
    for run_id in progress_bar(list(segments), len(segments), "wandb runs", progress):
        written = [path for path in segments[run_id] if wandb_offline.settle(path) is not None]
        for path in segments[run_id]:
            if path not in written:
                log.warning("rldk_track: W&B has written nothing into %s (only its header): left out. A run "
                            "that just finished: its W&B service is still writing it; read it again later", path)
        if not written:
            continue
        offline = wandb_offline.read_segments(written)
        side = _side_state(offline.files[0], run_id)
        key_map = _reverse(side.get("metric_keys", {})) if side else _artifact_key_map(offline)
        config_map = _reverse(side.get("config_keys", {})) if side else {}
        alerts = list(side.get("alerts", {}).values()) if side else _artifact_alerts(offline)
        status = _status(offline.summary, offline.exit_code)
        run_data = _run_data(
            name=offline.name or offline.run_id, source=str(offline.files[0].parent), run_id=offline.run_id,
            project=offline.project, status=status, config=offline.config, summary=offline.summary,
            tags=offline.tags, rows=offline.history, key_map=key_map, config_map=config_map, alerts=alerts,
            origin={"wandb_dir": str(offline.files[-1].parent.absolute())},
        )
        _read_samples(run_data, offline.history, [path.parent for path in offline.files])
        runs.append(run_data)
    return runs


def _read_samples(run: RunData, rows: Iterable[Mapping[str, Any]], folders: list[Path]) -> None:
    """The sample sets in history rows: W&B's ``table-file`` references (flattened by the run-file
    parser into ``samples/<name>.path`` and ``samples/<name>._type``) to JSON files under a run
    folder's ``files/`` (a resumed run has several folders)."""
    suffix = "._type"
    for row in rows:
        step = row.get(GLOBAL_STEP, row.get(WANDB_STEP))
        for key, value in row.items():
            if not (key.startswith(SAMPLES_PREFIX) and key.endswith(suffix) and value == TABLE_FILE_TYPE):
                continue
            base = key[: -len(suffix)]
            relative = row.get(f"{base}.path")
            for folder in folders:
                try:
                    table = json.loads((folder / "files" / str(relative)).read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                run.add_samples(int(step), base[len(SAMPLES_PREFIX):], table.get("columns", []), table.get("data", []))
                break
            else:
                log.warning("rldk_track: W&B samples table %s at step %s is not in %s; left out", relative, step, folders[-1])


def read_wandb_online(entity: str, project: str, run: str | None = None, progress: bool | None = None) -> list[RunData]:
    """Runs of ``entity/project`` (or the one run whose id or display name is ``run``) through
    ``wandb.Api()``; every history row is read (``scan_history``, not the sampled ``history``)."""
    import wandb

    api = wandb.Api(timeout=60)
    path = f"{entity}/{project}"
    if run is not None:
        try:
            found = [api.run(f"{path}/{run}")]
        except (wandb.errors.CommError, ValueError):
            found = list(api.runs(path, filters={"display_name": run}))
    else:
        found = list(api.runs(path))
    out = []
    for remote in progress_bar(found, len(found), "wandb runs", progress):
        key_map, alerts = _online_artifacts(remote)
        summary = dict(remote.summary_metrics or {})
        status = _status(summary, None) if summary.get(STATUS_KEY) else normalize_status(remote.state)
        out.append(_run_data(
            name=remote.name or remote.id, source=f"wandb://{path}/{remote.id}", run_id=remote.id,
            project=project, status=status, config=dict(remote.config), summary=summary, tags=list(remote.tags),
            rows=remote.scan_history(page_size=10_000), key_map=key_map, config_map={}, alerts=alerts,
            origin={"wandb_path": f"{path}/{remote.id}"},
        ))
    return out


def _run_data(
    *, name: str, source: str, run_id: str, project: str, status: str, config: Mapping[str, Any],
    summary: Mapping[str, Any], tags: Iterable[str], rows: Iterable[Mapping[str, Any]],
    key_map: Mapping[str, str], config_map: Mapping[str, str], alerts: Iterable[Mapping[str, Any]],
    origin: dict[str, str],
) -> RunData:
    run = RunData(name=name, source=source, backend="wandb", run_id=run_id, project=project, status=status,
                  origin=origin)
    raw_keys: set[str] = set()
    first_time = last_time = None
    for row in rows:
        step = row.get(GLOBAL_STEP, row.get(WANDB_STEP))
        if step is None:
            continue
        wall = _number(row.get(WANDB_TIMESTAMP))
        if wall is None:
            wall = math.nan
        else:
            first_time = wall if first_time is None else first_time
            last_time = wall
        points = {}
        for key, value in row.items():
            if key.startswith(("_", SAMPLES_PREFIX)) or key == GLOBAL_STEP or is_evidence_key(key):
                continue
            number = _number(value)
            if number is not None:
                raw_keys.add(key)
                name = key_map.get(key, key)
                if name != ALERT_COUNT_METRIC:
                    points[name] = number
        run.add_points(int(step), points, wall)
    run.start_time = first_time
    run.end_time = last_time if status in ("success", "failed", "killed") else None
    run.params = flatten({config_map.get(k, k): v for k, v in config.items() if not k.startswith("_")})
    run.tags = _tags(tags, summary)
    run.summary = {key_map.get(k, k): v for k, v in summary.items()
                   if not k.startswith(("_", OWN_PREFIX, SAMPLES_PREFIX)) and k != GLOBAL_STEP and k not in raw_keys
                   and not is_evidence_key(k)}
    for alert in sorted(alerts, key=lambda a: (a.get("seq") is None, a.get("seq") or 0)):
        run.add_alert(**alert)
    if not run.alerts:  # only the summary's active alerts are left: severity, no step
        for key, severity in summary.items():
            if key.startswith(ALERT_KEY_PREFIX) and severity != "cleared":
                run.add_alert(rule=key[len(ALERT_KEY_PREFIX):], severity=severity, step=None,
                              message="from the W&B summary (step unknown)")
    return run


def _number(value: Any) -> float | None:
    """A history value as a float: numbers, and the strings W&B may keep for NaN/Infinity."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("NaN", "nan", "Infinity", "-Infinity", "inf", "-inf"):
        return float(value)
    return None


def _tags(tags: Iterable[str], summary: Mapping[str, Any]) -> dict[str, str]:
    """``key=value`` run tags as a dict; a tag cut at W&B's 64 characters takes its full value
    from the summary's ``rldk/tag/<key>``."""
    out: dict[str, str] = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        out[key] = value if sep else ""
    for key, value in summary.items():
        if key.startswith(TAG_KEY_PREFIX):
            out[key[len(TAG_KEY_PREFIX):]] = str(value)
    return out


def _status(summary: Mapping[str, Any], exit_code: int | None) -> str:
    own = summary.get(STATUS_KEY)
    if own:
        return normalize_status(str(own))
    if exit_code is None:
        return "unfinished"
    return EXIT_STATUS.get(exit_code, "failed")


def _reverse(mapping: Mapping[str, str]) -> dict[str, str]:
    return {key: name for name, key in mapping.items()}


def _side_state(run_file: Path, run_id: str) -> SideStateFile | None:
    """The backend's ``rldk-<run_id>.json`` next to the run directories (None if absent)."""
    for folder in (run_file.parent.parent, run_file.parent):
        path = folder / side_state_name(run_id)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return None


def _artifact_key_map(offline: Any) -> dict[str, str]:
    for artifact in reversed(offline.artifacts):
        local = artifact.entries.get(KEY_MAP_FILE)
        if local:
            try:
                key_map: KeyMapFile = json.loads(Path(local).read_text(encoding="utf-8"))
                return _reverse(key_map.get("metrics", {}))
            except (OSError, ValueError):
                pass
    return {}


def _artifact_alerts(offline: Any) -> list[dict[str, Any]]:
    for artifact in reversed(offline.artifacts):
        if artifact.type != ALERTS_ARTIFACT_TYPE:
            continue
        for path, local in artifact.entries.items():
            if path.startswith(ALERTS_TABLE):
                try:
                    return _table_rows(json.loads(Path(local).read_text(encoding="utf-8")))
                except (OSError, ValueError):
                    pass
    return []


def _table_rows(table: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A ``wandb.Table`` JSON file (``columns`` + ``data``) as row dicts."""
    columns = table.get("columns", [])
    return [dict(zip(columns, row)) for row in table.get("data", [])]


def _online_artifacts(remote: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The key map and the alert log from an online run's logged artifacts (empty if absent)."""
    key_map: dict[str, str] = {}
    alerts: list[dict[str, Any]] = []
    for artifact in remote.logged_artifacts():
        if artifact.type == ALERTS_ARTIFACT_TYPE:
            table = artifact.get(ALERTS_TABLE)
            if table is not None:
                alerts = [dict(zip(table.columns, row)) for row in table.data]
        elif artifact.type == ARTIFACT_TYPE and KEY_MAP_FILE in {f.name for f in artifact.files()}:
            folder = artifact.download()
            stored: KeyMapFile = json.loads((Path(folder) / KEY_MAP_FILE).read_text(encoding="utf-8"))
            key_map = _reverse(stored.get("metrics", {}))
    return key_map, alerts
