"""Trackio: every record of a run in trackio's local store, the one ``trackio show`` reads.

Where: trackio's store folder, ``TRACKIO_DIR`` as trackio read it when it was imported (default
``$HF_HOME/trackio``), one SQLite file per project. Trackio fixes that folder once per process, so
this backend has no folder option: set ``TRACKIO_DIR`` before the run starts to record elsewhere.
Project = the ``project`` option, else the run's project; trackio run name = run name; trackio
run id = the rldk_track run id, so the run is found by the same id.

The backend writes through trackio's own storage calls (``SQLiteStorage.bulk_log`` and
``bulk_alert``), not through ``trackio.init``/``trackio.log``: those keep a process-wide current run
(the user's own trackio run would be finished by ours) and write on a thread of their own that
reports a failed write as a warning, while these calls write before they return and raise, so a
batch the dispatcher counts as delivered is in the store and a failed one is retried. Every row
and alert carries an id made from the run id and the record's ``seq`` (:mod:`rldk_track.vocab.trackio`),
and trackio ignores an id it has: a batch sent again after a failure, a resumed run and
``rldk-track sync --to trackio`` add nothing twice, so ``resume`` is not needed.

Trackio's rules, as this module applies them (``docs/backends/trackio.md`` has the mapping):

* metric keys are any string, except that trackio renames ``project``, ``run``, ``timestamp``,
  ``step``, ``time``, ``metrics`` and any key starting with ``__`` by prefixing ``__`` (its logs come
  back with ``step`` and ``timestamp`` columns): done here the same way, reported once;
* a step is any integer and may go back: each Metrics record is one row at its step, with the
  record's ``wall_time`` as the row's timestamp; NaN and ±Inf are stored as trackio's ``"NaN"``,
  ``"Infinity"``, ``"-Infinity"`` and read back as floats;
* a project's on-disk name keeps only ``[A-Za-z0-9_-]`` (``my.model`` and ``mymodel`` share a file),
  must not start with ``registry-`` nor end with a suffix of trackio's sidecar files: refused at ``init``;
* trackio has no run tags, summary or status: they are config keys under ``rldk/`` (the dashboard
  shows config keys not starting with ``_``), with the run's health and each rule's state; the config
  is rewritten whole when it changes (trackio keeps one config per run);
* alerts are trackio alerts (its dashboard's alerts list) at the alert's step, level
  info/warn/error for info/warning/critical, titled ``<rule>: <severity>`` or ``<rule>: cleared``;
  the text is the message and, on its last line, the alert's JSON form that the reader reads back.
  ``alerts/count`` is a metric row at each warning or critical alert's step.

Artifacts and checkpoint reports stay in the event log and the run directory: trackio's artifacts
are versioned objects of its own registry, not files attached to a run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping, Sequence

from rldk_track.alerts import ALERT_COUNT_METRIC, AlertLog, alert_json, rule_state
from rldk_track.backends.base import Backend, Resume, RunInfo
from rldk_track.normalize import deep_merge
from rldk_track.records import Alert, CheckpointHealth, Metrics, Params, Record, RunEnd, Samples, Summary, Tags
from rldk_track.version import __version__
from rldk_track.vocab.trackio import (
    SAMPLES_PREFIX,
    TABLE_TYPE,
    ALERT_JSON_PREFIX,
    ALERT_KEY_PREFIX,
    CHECKPOINT_KEY,
    CREATED_KEY,
    GROUP_KEY,
    HEALTH_KEY,
    LEVELS,
    OWN_PREFIX,
    PROJECT_KEY,
    RENAME_PREFIX,
    RESERVED_METRIC_KEYS,
    RUN_ID_KEY,
    STATUS_KEY,
    SUMMARY_KEY_PREFIX,
    TAG_KEY_PREFIX,
    TRACKIO_PRIVATE_PREFIX,
    VERSION_KEY,
    alert_id,
    alert_title,
    log_id,
)

log = logging.getLogger("rldk_track")

#: Trackio's project-name rules (``SQLiteStorage.validate_project_name``; tests/backends/test_trackio.py
#: checks them against the installed trackio): the prefix of its registries, the suffixes of its
#: parquet sidecar files.
REGISTRY_PREFIX = "registry-"
RESERVED_PROJECT_SUFFIXES = ("_system", "_configs", "_traces", "_artifacts", "_artifact_versions",
                             "_artifact_aliases", "_run_artifact_links", "_external_run_artifact_links")
SQLITE_TIMEOUT_S = 30.0


def canonical_project(project: str) -> str:
    """The project's on-disk name as trackio derives it: only ``[A-Za-z0-9_-]``, ``default`` if empty."""
    return "".join(c for c in project if c.isalnum() or c in "-_").rstrip() or "default"


def check_project(project: str) -> None:
    """Refuse a project name trackio refuses (ValueError saying why)."""
    canonical = canonical_project(project)
    if canonical.startswith(REGISTRY_PREFIX):
        raise ValueError(f"trackio project {project!r}: names starting with {REGISTRY_PREFIX!r} are trackio's registries")
    for suffix in RESERVED_PROJECT_SUFFIXES:
        if len(canonical) > len(suffix) and canonical.endswith(suffix):
            raise ValueError(f"trackio project {project!r}: its on-disk name {canonical!r} ends with {suffix!r}, "
                             "which trackio reserves for its own files; choose another project name")


def trackio_key(name: str) -> str:
    """``name`` as trackio stores a metric key (a reserved key or one starting with ``__`` gets ``__``)."""
    if name in RESERVED_METRIC_KEYS or name.startswith(RENAME_PREFIX):
        return RENAME_PREFIX + name
    return name


def iso_time(wall_time: float) -> str:
    """Seconds since the epoch as trackio's timestamps (ISO 8601 in UTC, microseconds)."""
    return datetime.fromtimestamp(wall_time, timezone.utc).isoformat()


def alert_text(record: Alert) -> str:
    """The alert's text in trackio: its message, the metric and threshold, and its JSON form last."""
    detail = []
    if record.metric is not None:
        detail.append(f"{record.metric} = {record.value:g}" if isinstance(record.value, (int, float)) else record.metric)
    if record.threshold is not None:
        detail.append(f"threshold {record.threshold:g}")
    if record.action:
        detail.append(f"action: {record.action}")
    lines = [record.message, *([" · ".join(detail)] if detail else [])]
    entry = json.dumps(alert_json(record), ensure_ascii=False, allow_nan=True, default=str)
    return "\n".join([*lines, "", ALERT_JSON_PREFIX + entry])


class TrackioBackend(Backend):
    """Records a run into trackio's local store, with the options in ``accepted_options``
    (``trackio={...}``)."""

    name = "trackio"
    accepted_options = {
        "project": "trackio project (default: the run's project)",
        "group": "trackio run group, which its dashboard can show and hide together (default: none)",
    }
    requires = ("trackio",)
    extra = "trackio"
    supports = Backend.supports | {"samples"}
    max_batch = 2000
    linger_s = 0.5  # each write takes trackio's project lock and commits: fewer, larger writes

    def __init__(self, run: RunInfo, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(run, options)
        for key in ("project", "group"):
            value = self.options.get(key)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"trackio option {key!r} must be str, not {type(value).__name__}")
        self.project = self.options.get("project") or run.project
        check_project(self.project)
        self.group = self.options.get("group")
        self._storage: Any = None  # trackio's SQLiteStorage, imported in open()
        self._utils: Any = None
        self._db: Any = None
        self._config: dict[str, Any] = {}  # the user's config, as logged (merged)
        self._own: dict[str, Any] = {}  # rldk_track's config keys
        self._alerts = AlertLog()

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self, state: Mapping[str, Any] | None, resume: Resume) -> Mapping[str, Any]:
        """Create (or migrate) the project's database and pick up a resumed run's config and
        alerts. Writes are idempotent by id, so ``resume`` is not needed."""
        from trackio import utils
        from trackio.sqlite_storage import SQLiteStorage

        self._storage, self._utils = SQLiteStorage, utils
        earlier = (state or {}).get("trackio_dir")
        if earlier and earlier != str(utils.TRACKIO_DIR):
            self.warn_once("store", f"rldk_track: trackio: this run recorded to {earlier} before; this process's "
                           f"TRACKIO_DIR is {utils.TRACKIO_DIR}, so the rest of it goes there (set TRACKIO_DIR={earlier} "
                           "to continue it in one store)")
        SQLiteStorage.validate_project_name(self.project)
        self._db = SQLiteStorage.init_db(self.project)
        stored = self._read_config()
        if stored:
            for key, value in stored.items():
                own = key.startswith(OWN_PREFIX) or key in (CREATED_KEY, GROUP_KEY)
                (self._own if own else self._config)[key] = value
            self._alerts = AlertLog(self._stored_alerts())
        self._own.setdefault(CREATED_KEY, iso_time(self.run.start_time))
        self._own.update({GROUP_KEY: self.group, RUN_ID_KEY: self.run.run_id, PROJECT_KEY: self.run.project,
                          VERSION_KEY: __version__, STATUS_KEY: "running"})
        self._own.setdefault(HEALTH_KEY, self._alerts.health())
        self._write_config()
        return {"project": self.project, "trackio_dir": str(utils.TRACKIO_DIR)}

    def write(self, records: Sequence[Record]) -> None:
        """Store the batch: metric rows, then alerts, then the config if it changed. Each call
        commits before it returns; ids make a resent batch add nothing."""
        rows: list[tuple[int, dict[str, Any], str, str]] = []  # step, metrics, timestamp, log id
        alerts: list[Alert] = []
        config_changed = False
        for record in records:
            if isinstance(record, Metrics):
                rows.append((record.step, self._metric_row(record.values), iso_time(record.wall_time),
                             log_id(self.run.run_id, record.seq)))
            elif isinstance(record, Params):
                deep_merge(self._config, self._private_keys_checked(record.values))
                config_changed = True
            elif isinstance(record, Tags):
                self._own.update({TAG_KEY_PREFIX + k: v for k, v in record.values.items()})
                config_changed = True
            elif isinstance(record, Summary):
                self._own.update({SUMMARY_KEY_PREFIX + k: v for k, v in record.values.items()})
                config_changed = True
            elif isinstance(record, Alert):
                self._alerts.add(record)
                alerts.append(record)
                count = self._alerts.count_point(record)
                if count is not None:
                    rows.append((record.step, {ALERT_COUNT_METRIC: count}, iso_time(record.wall_time),
                                 log_id(self.run.run_id, record.seq)))
                self._own[ALERT_KEY_PREFIX + record.rule] = rule_state(record)
                self._own[HEALTH_KEY] = self._alerts.health()
                config_changed = True
            elif isinstance(record, Samples):  # trackio's table, in a row at the samples' step
                table = {"_type": TABLE_TYPE, "_value": record.as_dicts()}
                rows.append((record.step, {SAMPLES_PREFIX + record.name: table}, iso_time(record.wall_time),
                             log_id(self.run.run_id, record.seq)))
            elif isinstance(record, CheckpointHealth):
                self._own[CHECKPOINT_KEY] = f"score {record.score:g} at step {record.step} ({len(record.issues)} issues)"
                config_changed = True
            elif isinstance(record, RunEnd):
                self._own[STATUS_KEY] = record.status
                config_changed = True
        if rows:
            self._storage.bulk_log(
                project=self.project, run=self.run.name, run_id=self.run.run_id,
                metrics_list=[r[1] for r in rows], steps=[r[0] for r in rows],
                timestamps=[r[2] for r in rows], log_ids=[r[3] for r in rows],
            )
        if alerts:
            self._storage.bulk_alert(
                project=self.project, run=self.run.name, run_id=self.run.run_id,
                titles=[alert_title(a.rule, a.state, a.severity) for a in alerts],
                texts=[alert_text(a) for a in alerts],
                levels=[LEVELS.get(a.severity, "warn") for a in alerts],
                steps=[a.step for a in alerts], timestamps=[iso_time(a.wall_time) for a in alerts],
                alert_ids=[alert_id(self.run.run_id, a.seq) for a in alerts],
            )
        if config_changed:
            self._write_config()

    def describe(self) -> str:
        where = self._utils.TRACKIO_DIR if self._utils else "TRACKIO_DIR"
        return f"trackio project {self.project!r} in {where}"

    # -- records -----------------------------------------------------------------------------
    def _metric_row(self, values: Mapping[str, float]) -> dict[str, float]:
        row = {}
        for name, value in values.items():
            key = trackio_key(name)
            if key != name:
                self.warn_once(f"key:{name}", f"rldk_track: trackio reserves the metric key {name!r}; it is logged as {key!r}")
            row[key] = value
        return row

    def _private_keys_checked(self, values: Mapping[str, Any]) -> Mapping[str, Any]:
        hidden = [k for k in values if str(k).startswith(TRACKIO_PRIVATE_PREFIX)]
        if hidden:
            self.warn_once(f"config:{hidden[0]}", f"rldk_track: trackio's dashboard hides config keys starting with "
                           f"'_' ({', '.join(map(repr, hidden[:3]))}); they are stored and read back")
        return values

    # -- trackio's store ---------------------------------------------------------------------
    def _full_config(self) -> dict[str, Any]:
        return {**self._config, **self._own}

    def _write_config(self) -> None:
        """Replace the run's config row. Trackio writes a config only together with metric rows
        (``bulk_log(config=...)``); the status at the end and tags before the first step come
        alone, so the row is written here in trackio's own form (its ``configs`` table, one row
        per run id, values through its ``serialize_values``)."""
        import orjson

        utils = self._utils
        config = utils.serialize_values(utils.to_json_safe(self._full_config()))
        with self._storage._get_process_lock(self.project), self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO configs (run_id, run_name, config, created_at) VALUES (?, ?, ?, ?)",
                (self.run.run_id, self.run.name, orjson.dumps(config), iso_time(self.run.start_time)),
            )

    def _read_config(self) -> dict[str, Any] | None:
        import orjson

        with self._connect() as conn:
            row = conn.execute("SELECT config FROM configs WHERE run_id = ?", (self.run.run_id,)).fetchone()
        return self._utils.deserialize_values(orjson.loads(row[0])) if row else None

    def _stored_alerts(self) -> list[dict[str, Any]]:
        """The JSON forms of the alerts this run already stored (resuming)."""
        entries = []
        for alert in self._storage.get_alerts(self.project, run_id=self.run.run_id):
            last = (alert.get("text") or "").rsplit("\n", 1)[-1]
            if last.startswith(ALERT_JSON_PREFIX):
                try:
                    entries.append(json.loads(last[len(ALERT_JSON_PREFIX):]))
                except ValueError:
                    continue
        return [e for e in entries if isinstance(e, dict) and isinstance(e.get("seq"), int)]

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection to the project's database that commits (or rolls back) and closes."""
        conn = sqlite3.connect(str(self._db), timeout=SQLITE_TIMEOUT_S)
        try:
            with conn:
                yield conn
        finally:
            conn.close()
