"""The MLflow backend: every record of a run in one MLflow run, within MLflow's rules.

Where: ``tracking_uri`` option, else ``MLFLOW_TRACKING_URI``, else an embedded sqlite store
``<dir>/mlflow.db`` with artifacts in ``<dir>/mlartifacts``. Experiment = project; MLflow run
name = run name; tag ``rldk.run_id`` = run id. An explicit :class:`mlflow.MlflowClient` is used,
so the process-wide tracking URI and active run (the user's own MLflow use) are never touched.

MLflow's rules live here and nowhere else (``docs/backends/mlflow.md`` has the full mapping):

* keys: only ``[\\w/.\\- :]``, no path tricks (``a//b``, ``./a``, ``a/..``), at most 250
  characters. Names are adapted and reported once; two names that adapt to one key are told apart
  with a digest of the original, and the mapping is kept in the artifact ``rldk/mlflow_keys.json``
  so a later ``rldk-track sync`` makes the same choices;
* ``log_batch``: at most 1000 metrics, 100 params, 100 tags, 1000 entities and ~1 MB per call.
  Metrics of many records are packed into full batches;
* params are immutable and at most 6000 characters: long values are truncated with a note (the
  full config is the artifact ``rldk/config.json``); a changed value goes to a
  ``rldk.param_changed.<key>`` tag instead of failing the batch; tag values are at most 8000;
* metric timestamps are the records' ``wall_time``: MLflow's SQL store keys metrics on
  (key, timestamp, step, value), so a re-sent batch is de-duplicated. That makes retries after a
  timeout and ``rldk-track sync`` after a crash exact;
* MLflow has no run summary: the summary is the artifact ``rldk/summary.json`` (values as given,
  and which metric points carry them), and for the UI numbers are also metric points at the last
  step, other values ``summary.<key>`` tags.

HTTP requests made by this backend use a short timeout and few retries (options
``http_timeout``/``http_max_retries``) without changing the process-wide settings: the values
apply to the backend's worker thread only (see :func:`_install_thread_http_limits`).
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import logging
import math
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from rldk_track.alerts import ALERT_COUNT_METRIC, AlertLog, rule_state
from rldk_track.backends.base import Backend, RejectedError, Resume, RunInfo
from rldk_track.normalize import deep_merge, flatten
from rldk_track.records import (
    Alert,
    Artifact,
    CheckpointHealth,
    Metrics,
    Params,
    Record,
    RunEnd,
    Samples,
    Summary,
    Tags,
    checkpoint_folder,
    to_json,
)
from rldk_track.vocab.mlflow import (
    ALERT_TAG_PREFIX,
    ALERTS_ARTIFACT,
    ARTIFACTS_FOLDER,
    CHECKPOINT_TAG,
    CONFIG_ARTIFACT,
    EVIDENCE_TAG_PREFIX,
    EXPERIMENT_KIND_TAG,
    HEALTH_TAG,
    KEYS_ARTIFACT,
    LOGGED_ARTIFACTS_TAG,
    PARAM_CHANGED_TAG_PREFIX,
    PARAMS_TRUNCATED_TAG,
    PROJECT_TAG,
    RANK_TAG,
    RUN_ID_TAG,
    SAMPLES_FOLDER,
    SAMPLES_LATEST_FILE,
    SAMPLES_TAG_PREFIX,
    STORE_FILE,
    SUMMARY_ARTIFACT,
    SUMMARY_TAG_PREFIX,
    TRAINING_EXPERIMENT_KIND,
    VERSION_TAG,
    WORLD_SIZE_TAG,
    KeyMapFile,
    SummaryFile,
    TableFile,
    evidence_file,
    read_state_artifacts,
    samples_file,
    sqlite_path,
    sqlite_uri,
)

log = logging.getLogger("rldk_track")

# MLflow's limits (mlflow.utils.validation; tests/backends/test_mlflow.py checks them against
# the installed mlflow).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_BATCH_REQUEST_BYTES = 1_000_000
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_RUN_NAME_LENGTH = 250

#: Our own budget per ``log_batch`` request, below MLflow's 1 MB, for JSON overhead.
REQUEST_BYTES_BUDGET = 900_000
#: Defaults for requests made by this backend (MLflow's own: 120 s timeout, 7 retries).
DEFAULT_HTTP_TIMEOUT_S = 15
DEFAULT_HTTP_MAX_RETRIES = 1
DEFAULT_HTTP_BACKOFF_FACTOR = 1

STATUSES = {"success": "FINISHED", "failed": "FAILED", "killed": "KILLED"}

PARAM_NOTE = " ...[truncated by rldk_track; full value in rldk/config.json]"
TAG_NOTE = " ...[truncated by rldk_track; full value in the event log]"

# MLflow accepts alphanumerics, underscores, dashes, periods, spaces, slashes and (except on
# Windows) colons; \w is Unicode-aware in both MLflow's check and ours.
_BAD_KEY_CHARS = re.compile(r"[^\w/.\- ]" if os.name == "nt" else r"[^\w/.\- :]")


# -- names ---------------------------------------------------------------------------------
def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def mlflow_key(name: str) -> str:
    """``name`` as a key MLflow accepts; a valid name comes back unchanged.

    Bad characters become ``_``; empty, ``.`` and ``..`` path segments (which MLflow refuses
    because the name would normalize to another one) are removed or replaced; a name longer
    than 250 characters is cut and ends with a digest of the full name, so two long names that
    share a prefix stay apart.
    """
    key = _BAD_KEY_CHARS.sub("_", name)
    if "/" in key or key in ("", ".", ".."):
        parts = [p if p not in (".", "..") else "_" * len(p) for p in key.split("/") if p]
        key = "/".join(parts) or "_"
    if key.startswith(".."):
        key = "_" + key[1:]
    if len(key) > MAX_KEY_LENGTH:
        key = f"{key[: MAX_KEY_LENGTH - 11]}_{_digest(name)}"
    return key


class KeyMap:
    """Original names to MLflow keys for one namespace (metrics, params or tags), never merging
    two originals into one key.

    A name keeps the key :func:`mlflow_key` gives it unless another original already owns that
    key; then it gets the key plus a digest of its own text. Only changed names are remembered in
    ``changed`` (persisted as ``rldk/mlflow_keys.json``), so a resumed run makes the same choices.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._by_name: dict[str, str] = {}
        self._owner: dict[str, str] = {}
        self.changed: dict[str, str] = {}

    def key(self, name: str) -> str:
        """The MLflow key for ``name``, assigned on first sight (and reported if it differs)."""
        key = self._by_name.get(name)
        if key is not None:
            return key
        key = mlflow_key(name)
        owner = self._owner.get(key, name)
        if owner != name:
            base = f"{key[: MAX_KEY_LENGTH - 11]}_{_digest(name)}"
            key, n = base, 1
            while self._owner.get(key, name) != name:
                key, n = f"{base[: MAX_KEY_LENGTH - 4]}_{n}", n + 1
            log.warning(
                "rldk_track: MLflow %s names %r and %r would both become %r; the second is logged as %r",
                self.kind, _preview(owner), _preview(name), mlflow_key(name), key,
            )
        elif key != name:
            log.warning(
                "rldk_track: %r is not a valid MLflow %s name (allowed: letters, digits, _ - . / space :, "
                "at most %d characters); it is logged as %r",
                _preview(name), self.kind, MAX_KEY_LENGTH, _preview(key),
            )
        self._by_name[name] = key
        self._owner[key] = name
        if key != name:
            self.changed[name] = key
        return key

    def claim(self, key: str) -> None:
        """Mark ``key`` as used in MLflow by the name equal to it (resuming a run)."""
        self._owner.setdefault(key, key)
        self._by_name.setdefault(key, key)

    def restore(self, name: str, key: str) -> None:
        """Re-apply a mapping saved in ``rldk/mlflow_keys.json`` (resuming a run)."""
        self._by_name[name] = key
        self._owner[key] = name
        self.changed[name] = key


def _preview(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


# -- values --------------------------------------------------------------------------------
def param_value(value: Any) -> str:
    """A config value as MLflow stores params: ``str`` for scalars, JSON for lists and mappings."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, Mapping)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def truncate(value: str, limit: int, note: str) -> str:
    """``value`` cut to ``limit`` characters, ending with ``note`` when it was cut."""
    if len(value) <= limit:
        return value
    return value[: limit - len(note)] + note


def _json_size(text: str) -> int:
    """Bytes ``text`` takes in a JSON request (non-ASCII is escaped as \\uXXXX)."""
    return len(text) if text.isascii() else 6 * len(text)


# -- per-thread HTTP limits ----------------------------------------------------------------
_thread_limits = threading.local()
_install_lock = threading.Lock()
_installed = False


def _install_thread_http_limits() -> None:
    """Let MLflow's HTTP timeout/retry settings be set for one thread.

    MLflow reads ``MLFLOW_HTTP_REQUEST_TIMEOUT``, ``..._MAX_RETRIES`` and ``..._BACKOFF_FACTOR``
    through ``mlflow.environment_variables`` on every request and offers no per-client setting.
    Setting the environment variables would change them for the user's own MLflow calls too, so
    instead each of the three objects gets a ``get`` that returns this thread's value when one is
    set (inside :meth:`MlflowBackend._limits`) and otherwise behaves exactly as before.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        from mlflow import environment_variables as env

        for var in (env.MLFLOW_HTTP_REQUEST_TIMEOUT, env.MLFLOW_HTTP_REQUEST_MAX_RETRIES,
                    env.MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, env.MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT):
            var.get = _thread_aware(var.name, var.get)
        _installed = True


def _thread_aware(name: str, original: Any) -> Any:
    def get() -> Any:
        limits = getattr(_thread_limits, "values", None)
        if limits is not None and name in limits:
            return limits[name]
        return original()

    return get


# -- one write -----------------------------------------------------------------------------
@dataclass
class _Batch:
    """What one ``write`` sends, gathered from its records in order."""

    metrics: list[Any] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, str]] = field(default_factory=list)
    config_changed: bool = False
    alerts_changed: bool = False
    summary_changed: bool = False
    end: RunEnd | None = None


class MlflowBackend(Backend):
    """Records a run into MLflow (a tracking server or an embedded sqlite store), with the
    options in ``accepted_options`` (``mlflow={...}``)."""

    name = "mlflow"
    accepted_options = {
        "tracking_uri": "where to record (else the run resumed's, else MLFLOW_TRACKING_URI, else <dir>/mlflow.db)",
        "experiment": "MLflow experiment name (default: the project; created if missing)",
        "artifact_location": "artifact root of a new experiment (default for sqlite: mlartifacts/ next to the database)",
        "http_timeout": "seconds per HTTP request (default: MLFLOW_HTTP_REQUEST_TIMEOUT if set, else 15)",
        "http_max_retries": "MLflow's own retries per request (default 1; rldk_track retries with backoff after that)",
    }
    supports = Backend.supports | {"samples"}
    requires = ("mlflow",)
    extra = "mlflow"
    max_batch = 2000
    linger_s = 1.0  # each request costs the server (and our worker) milliseconds: send ~1 per second

    def __init__(self, run: RunInfo, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(run, options)
        self._uri: str | None = None
        self._client: Any = None
        self._run_id = ""
        self._keys = {kind: KeyMap(kind) for kind in ("metric", "param", "tag")}
        self._keys_saved = 0
        self._params: dict[str, str] = {}
        self._truncated: set[str] = set()
        self._config: dict[str, Any] = {}
        self._alerts = AlertLog()
        self._summary: dict[str, Any] = {}
        #: metric key -> [[step, timestamp ms, value as stored], ...]: the points that show summary values
        self._summary_points: dict[str, list[list[float]]] = {}
        self._last_step = -1
        #: The ``mlflow.loggedArtifacts`` entries (the files MLflow's UI shows as tables).
        self._tables: list[dict[str, str]] = []
        env_timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT")
        self._limits_values = {
            "MLFLOW_HTTP_REQUEST_TIMEOUT": float(self.options.get("http_timeout") or env_timeout or DEFAULT_HTTP_TIMEOUT_S),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": int(self.options.get("http_max_retries", DEFAULT_HTTP_MAX_RETRIES)),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": DEFAULT_HTTP_BACKOFF_FACTOR,
        }

    # -- where -------------------------------------------------------------------------------
    def tracking_uri(self, state: Mapping[str, Any] | None = None) -> str:
        """Option, else the URI a resumed run used, else ``MLFLOW_TRACKING_URI``, else the
        embedded sqlite store under the run directory."""
        resumed = (state or {}).get("tracking_uri")
        if resumed and _masked(resumed) != resumed:
            resumed = None  # its password was masked when it was saved: not usable
        uri = self.options.get("tracking_uri") or resumed or os.environ.get("MLFLOW_TRACKING_URI")
        return str(uri) if uri else sqlite_uri(self.run.dir / STORE_FILE)

    def describe(self) -> str:
        return f"mlflow at {_masked(self._uri or self.tracking_uri())}"

    @classmethod
    def reopen(cls, origin: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The MLflow run the reader found (``tracking_uri``, ``mlflow_run_id``, ``experiment_id``)."""
        state = {"tracking_uri": origin["tracking_uri"], "mlflow_run_id": origin["mlflow_run_id"],
                 "experiment_id": origin.get("experiment_id")}
        return {"tracking_uri": origin["tracking_uri"]}, state

    @contextlib.contextmanager
    def _limits(self, retries: int | None = None) -> Iterator[None]:
        """This backend's HTTP limits on this thread; ``retries=0`` for a request that is not
        safe to repeat blindly (MLflow retries even a POST whose answer was lost)."""
        previous = getattr(_thread_limits, "values", None)
        values = self._limits_values
        if retries is not None:
            values = {**values, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": retries}
        _thread_limits.values = values
        try:
            yield
        finally:
            _thread_limits.values = previous

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self, state: Mapping[str, Any] | None, resume: Resume) -> Mapping[str, Any]:
        """Create the MLflow run, or resume the one in ``state`` / tagged with this run id. MLflow
        keeps what it acknowledged, so ``resume`` is not needed: the dispatcher resends the rest."""
        from mlflow import MlflowClient

        _install_thread_http_limits()
        uri = self.tracking_uri(state)
        if _masked(uri) != uri:  # MLflow prints "View run ... at: <url>" with the URI's password
            self._limits_values["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = True
        database = sqlite_path(uri)
        if database is not None:  # sqlite creates the file, not its folder
            database.parent.mkdir(parents=True, exist_ok=True)
        with self._limits():  # any error here is transient: the dispatcher retries open
            client = MlflowClient(uri)
            run = None
            if state and state.get("tracking_uri") == _masked(uri) and state.get("mlflow_run_id"):
                run = self._get_run(client, state["mlflow_run_id"])
            experiment_id = run.info.experiment_id if run else self._experiment_id(client, uri)
            run = run or self._find_run(client, experiment_id)
            if run is None:
                # Never retried by MLflow: a create applied whose answer was lost would make a
                # second run. The dispatcher retries open(), which finds the first by its tag.
                with self._limits(retries=0):
                    run = client.create_run(
                        experiment_id, start_time=int(self.run.start_time * 1000),
                        tags=self._run_tags(), run_name=self.run.name[:MAX_RUN_NAME_LENGTH],
                    )
            else:
                self._resume(client, run)
        self._uri, self._client, self._run_id = uri, client, run.info.run_id
        # the state is saved in the cursor file: never with a password from the URI
        return {"mlflow_run_id": run.info.run_id, "experiment_id": experiment_id, "tracking_uri": _masked(uri)}

    def _get_run(self, client: Any, run_id: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            run = client.get_run(run_id)
        except MlflowException as exc:
            if exc.get_http_status_code() != 404:
                raise
            log.warning("rldk_track: MLflow run %s is gone; looking for run %s again", run_id, self.run.run_id)
            return None
        if run.info.lifecycle_stage != "active":
            log.warning("rldk_track: MLflow run %s was deleted; starting a new MLflow run", run_id)
            return None
        return run

    def _experiment_id(self, client: Any, uri: str) -> str:
        from mlflow.exceptions import MlflowException

        name = str(self.options.get("experiment") or self.run.project)[:MAX_EXPERIMENT_NAME_LENGTH]
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = self.options.get("artifact_location")
            database = sqlite_path(uri)
            if location is None and database is not None:  # next to the db, not MLflow's ./mlruns
                location = (database.parent / ARTIFACTS_FOLDER).as_uri()
            try:
                return client.create_experiment(name, artifact_location=location,
                                                tags={EXPERIMENT_KIND_TAG: TRAINING_EXPERIMENT_KIND})
            except MlflowException as exc:  # another run created it first
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = client.get_experiment_by_name(name)
        if experiment.lifecycle_stage != "active":
            raise RuntimeError(
                f"MLflow experiment {name!r} is deleted: restore it (`mlflow experiments restore "
                f"--experiment-id {experiment.experiment_id}`) or pass mlflow={{'experiment': ...}}"
            )
        return experiment.experiment_id

    def _find_run(self, client: Any, experiment_id: str) -> Any:
        """The MLflow run tagged with this run id (a resumed run, or a create whose reply was lost)."""
        if "'" in self.run.run_id:
            return None
        found = client.search_runs([experiment_id], f"tags.`{RUN_ID_TAG}` = '{self.run.run_id}'", max_results=1)
        return found[0] if found else None

    def _run_tags(self) -> dict[str, str]:
        from rldk_track.version import __version__

        tags = {
            RUN_ID_TAG: self.run.run_id,
            PROJECT_TAG: self.run.project,
            RANK_TAG: str(self.run.rank),
            WORLD_SIZE_TAG: str(self.run.world_size),
            VERSION_TAG: __version__,
            HEALTH_TAG: "ok",
            "mlflow.source.name": _preview(os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python", 500),
        }
        with contextlib.suppress(Exception):  # no user name in some containers
            tags["mlflow.user"] = getpass.getuser()
        return {k: v[:MAX_TAG_VALUE_LENGTH] for k, v in tags.items()}

    def _resume(self, client: Any, run: Any) -> None:
        """Pick up what the MLflow run already holds, so replayed and new records fit with it."""
        data = run.data
        self._params = dict(data.params)
        for kind, keys in (("metric", data.metrics), ("param", data.params), ("tag", data.tags)):
            for key in keys:
                self._keys[kind].claim(key)
        self._truncated = {k for k in data.tags.get(PARAMS_TRUNCATED_TAG, "").split(", ") if k}
        with contextlib.suppress(ValueError):
            self._tables = [e for e in json.loads(data.tags.get(LOGGED_ARTIFACTS_TAG, "[]")) if isinstance(e, dict)]
        self._last_step = max((m.step for m in getattr(data, "_metric_objs", ())), default=-1)
        saved = read_state_artifacts(client, run.info.run_id)
        if KEYS_ARTIFACT in saved:
            key_map: KeyMapFile = json.loads(saved[KEYS_ARTIFACT])
            for kind, pairs in key_map.items():
                for name, key in pairs:
                    self._keys[kind].restore(name, key)
            self._keys_saved = sum(len(k.changed) for k in self._keys.values())
        if CONFIG_ARTIFACT in saved:
            self._config = json.loads(saved[CONFIG_ARTIFACT])
        if ALERTS_ARTIFACT in saved:
            self._alerts = AlertLog.from_jsonl(saved[ALERTS_ARTIFACT])
        if SUMMARY_ARTIFACT in saved:
            saved_summary: SummaryFile = json.loads(saved[SUMMARY_ARTIFACT])
            self._summary = dict(saved_summary.get("values", {}))
            self._summary_points = {k: list(v) for k, v in saved_summary.get("points", {}).items()}
        if run.info.status != "RUNNING":
            client.update_run(run.info.run_id, status="RUNNING")

    def write(self, records: Sequence[Record]) -> None:
        """Send the records: params first, then metrics and tags packed into full ``log_batch``
        calls, then artifacts, then the run's end status."""
        batch = _Batch()
        for record in records:
            try:
                self._add(record, batch)
            except Exception as exc:  # a malformed record (e.g. from emit()) must not wedge the worker
                raise RejectedError(f"cannot map {record.kind} record {record.seq} onto MLflow: {exc!r}") from exc
        with self._limits(), self._rejections():
            self._send(batch)

    def close(self) -> None:
        self._client = None

    # -- records -> batch --------------------------------------------------------------------
    def _add(self, record: Record, batch: _Batch) -> None:
        from mlflow.entities import Metric

        if isinstance(record, Metrics):
            timestamp, step = int(record.wall_time * 1000), int(record.step)
            key = self._keys["metric"].key
            for name, value in record.values.items():
                number = self._number(name, value)
                if number is not None:
                    batch.metrics.append(Metric(key(name), number, timestamp, step))
            self._last_step = max(self._last_step, step)
        elif isinstance(record, Params):
            self._add_params(record.values, batch)
        elif isinstance(record, Tags):
            for name, value in record.values.items():
                batch.tags[self._keys["tag"].key(name)] = self._tag_value(name, str(value))
        elif isinstance(record, Summary):
            self._add_summary(record, batch)
        elif isinstance(record, Alert):
            self._add_alert(record, batch)
        elif isinstance(record, CheckpointHealth):
            self._add_checkpoint(record, batch)
        elif isinstance(record, Samples):
            self._add_samples(record, batch)
        elif isinstance(record, Artifact):
            if not record.path:
                raise ValueError(f"artifact {record.name!r} was not staged to a file")
            batch.files.append((record.path, record.name))
        elif isinstance(record, RunEnd):
            batch.end = record

    def _number(self, name: str, value: Any) -> float | None:
        try:
            return float(value)
        except (TypeError, ValueError):
            self.warn_once(f"value:{name}", f"rldk_track: MLflow metric {name!r} has a non-numeric value {value!r}; not logged")
            return None

    def _add_params(self, values: Mapping[str, Any], batch: _Batch) -> None:
        deep_merge(self._config, values)
        batch.config_changed = True
        for name, value in flatten(values).items():
            key = self._keys["param"].key(name)
            full = param_value(value)
            text = truncate(full, MAX_PARAM_VALUE_LENGTH, PARAM_NOTE)
            if text is not full:
                self.warn_once(f"truncated:{key}", f"rldk_track: MLflow param {key!r} is {len(full)} characters; "
                                  f"truncated to {MAX_PARAM_VALUE_LENGTH} (full value in {CONFIG_ARTIFACT})")
                if key not in self._truncated:
                    self._truncated.add(key)
                    batch.tags[PARAMS_TRUNCATED_TAG] = truncate(", ".join(sorted(self._truncated)), MAX_TAG_VALUE_LENGTH, " ...")
            logged = batch.params.get(key, self._params.get(key))
            if logged is None:
                batch.params[key] = text
            elif logged != text:
                self._param_changed(name, key, text, batch)

    def _param_changed(self, name: str, key: str, text: str, batch: _Batch) -> None:
        """MLflow params cannot change: keep the first value, put the new one in a tag."""
        tag = self._keys["tag"].key(f"{PARAM_CHANGED_TAG_PREFIX}{name}")
        batch.tags[tag] = self._tag_value(tag, text)
        self.warn_once(f"param_changed:{key}", f"rldk_track: MLflow params cannot change; {key!r} keeps its first "
                          f"value and the new one is in the tag {tag!r} (and in {CONFIG_ARTIFACT})")

    def _tag_value(self, name: str, value: str) -> str:
        if len(value) > MAX_TAG_VALUE_LENGTH:
            self.warn_once(f"tag_long:{name}", f"rldk_track: MLflow tag {name!r} is {len(value)} characters; "
                              f"truncated to {MAX_TAG_VALUE_LENGTH}")
            return truncate(value, MAX_TAG_VALUE_LENGTH, TAG_NOTE)
        return value

    def _add_summary(self, record: Summary, batch: _Batch) -> None:
        """The summary (later values win per top-level key, as in the event log) is the artifact
        ``rldk/summary.json``, which readers take it from. So that MLflow's UI shows it, numbers
        are also metric points at the last step logged (listed in the artifact, so readers leave
        them out of the series) and anything else is a ``summary.<key>`` tag."""
        from mlflow.entities import Metric

        self._summary.update(record.values)
        batch.summary_changed = True
        timestamp, step = int(record.wall_time * 1000), max(self._last_step, 0)
        for name, value in flatten(record.values).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                key, number = self._keys["metric"].key(name), float(value)
                batch.metrics.append(Metric(key, number, timestamp, step))
                points = self._summary_points.setdefault(key, [])
                point = [step, timestamp, _as_stored(number)]
                if point not in points:
                    points.append(point)
            else:
                key = self._keys["tag"].key(f"{SUMMARY_TAG_PREFIX}{name}")
                batch.tags[key] = self._tag_value(key, param_value(value))

    def _add_alert(self, record: Alert, batch: _Batch) -> None:
        """The alert policy (:mod:`rldk_track.alerts`) in MLflow: tag ``rldk.alert.<rule>`` = the
        rule's state, tag ``rldk.health``, metric ``alerts/count``, artifact ``rldk/alerts.jsonl``;
        its evidence rows as a table beside it (:func:`evidence_file`), named by tag
        ``rldk.evidence.<rule>``."""
        from mlflow.entities import Metric

        if record.evidence is not None:
            path = evidence_file(record.rule, int(record.step))
            table: TableFile = {"columns": list(record.evidence.columns),
                                "data": [[_strict_json(cell) for cell in row] for row in record.evidence.rows]}
            batch.texts[path] = json.dumps(table, ensure_ascii=False, allow_nan=False)
            batch.tags[self._keys["tag"].key(f"{EVIDENCE_TAG_PREFIX}{record.rule}")] = self._tag_value("evidence", path)
            if {"path": path, "type": "table"} not in self._tables:
                self._tables.append({"path": path, "type": "table"})
            batch.tags[LOGGED_ARTIFACTS_TAG] = self._logged_tables()
        self._alerts.add(record)
        batch.alerts_changed = True
        batch.tags[self._keys["tag"].key(f"{ALERT_TAG_PREFIX}{record.rule}")] = rule_state(record)
        batch.tags[HEALTH_TAG] = self._alerts.health()
        count = self._alerts.count_point(record)
        if count is not None:
            batch.metrics.append(Metric(ALERT_COUNT_METRIC, float(count), int(record.wall_time * 1000), int(record.step)))

    def _add_checkpoint(self, record: CheckpointHealth, batch: _Batch) -> None:
        """Tag ``rldk.checkpoint`` = the latest verdict in brief, artifact
        ``rldk/checkpoints/step_<N>/health.json`` = the record. No metric: the ``checkpoint/*``
        series come from the analyzer's ``Metrics`` record, so each point is logged once."""
        step = int(record.step)
        brief = {"step": step, "score": record.score, "issues": list(record.issues[:10])}
        batch.tags[CHECKPOINT_TAG] = self._tag_value(CHECKPOINT_TAG, json.dumps(brief, ensure_ascii=False, default=str))
        batch.texts[f"{checkpoint_folder(step)}/health.json"] = json.dumps(
            to_json(record, self.run.run_id), ensure_ascii=False, indent=2, default=str
        )

    def _add_samples(self, record: Samples, batch: _Batch) -> None:
        """The sample set as table JSON at ``rldk/samples/<name>/step_<N>.json`` and again as
        ``latest.json`` (written whole, so a replayed record adds no rows, unlike ``log_table``,
        which appends); tag ``rldk.samples.<name>`` names the latest file, and the
        ``mlflow.loggedArtifacts`` tag lists the files so the UI shows them as tables (the latest
        of each set first, then the newest steps that fit in a tag value)."""
        table: TableFile = {"columns": list(record.columns),
                            "data": [[_strict_json(cell) for cell in row] for row in record.rows]}
        text = json.dumps(table, ensure_ascii=False, allow_nan=False)
        path = samples_file(record.name, int(record.step))
        latest = f"{SAMPLES_FOLDER}/{record.name}/{SAMPLES_LATEST_FILE}"
        batch.texts[path] = text
        batch.texts[latest] = text
        batch.tags[self._keys["tag"].key(f"{SAMPLES_TAG_PREFIX}{record.name}")] = self._tag_value("samples", path)
        for entry in ({"path": latest, "type": "table"}, {"path": path, "type": "table"}):
            if entry not in self._tables:
                self._tables.append(entry)
        batch.tags[LOGGED_ARTIFACTS_TAG] = self._logged_tables()

    def _logged_tables(self) -> str:
        """The ``mlflow.loggedArtifacts`` value within MLflow's tag limit: every ``latest.json``
        and as many step and evidence files as fit, newest first."""
        latest = [e for e in self._tables if e["path"].endswith(f"/{SAMPLES_LATEST_FILE}")]
        others = [e for e in self._tables if e not in latest]
        kept = list(latest)
        for entry in reversed(others):
            if len(json.dumps([*kept, entry])) > MAX_TAG_VALUE_LENGTH:
                break
            kept.append(entry)
        return json.dumps(kept)

    # -- batch -> MLflow ---------------------------------------------------------------------
    def _send(self, batch: _Batch) -> None:
        client, run_id = self._client, self._run_id
        self._save_keys()
        if batch.params:
            self._log_params(batch)
            self._save_keys()
        if batch.summary_changed:  # before the points it lists, so none is ever read as a series point
            summary: SummaryFile = {"values": self._summary, "points": self._summary_points}
            client.log_text(run_id, json.dumps(summary, ensure_ascii=False, indent=1, default=str), SUMMARY_ARTIFACT)
        for request in self._requests(batch.metrics, batch.tags):
            client.log_batch(run_id, metrics=request[0], tags=request[1])
        if batch.config_changed:
            batch.texts[CONFIG_ARTIFACT] = json.dumps(self._config, ensure_ascii=False, indent=2, default=str)
        if batch.alerts_changed:
            batch.texts[ALERTS_ARTIFACT] = self._alerts.jsonl()
        for name, text in batch.texts.items():
            client.log_text(run_id, text, name)
        for path, name in batch.files:
            self._log_file(path, name)
        if batch.end is not None:
            client.set_terminated(run_id, STATUSES.get(batch.end.status, "FINISHED"), int(batch.end.wall_time * 1000))

    def _save_keys(self) -> None:
        """Upload the name mapping when it grew, before any data that uses the new keys."""
        changed = sum(len(k.changed) for k in self._keys.values())
        if changed != self._keys_saved:
            key_map: KeyMapFile = {kind: sorted(keys.changed.items()) for kind, keys in self._keys.items()}
            text = json.dumps(key_map, ensure_ascii=False, indent=1)
            self._client.log_text(self._run_id, text, KEYS_ARTIFACT)
            self._keys_saved = changed

    def _log_params(self, batch: _Batch) -> None:
        """Params in calls of 100. If MLflow holds a different value that this backend did not
        know of (another writer), re-read the run's params and move the changed ones to tags."""
        from mlflow.exceptions import MlflowException

        params = dict(batch.params)
        try:
            self._log_param_batches(params)
        except MlflowException as exc:
            if "Changing param values is not allowed" not in str(exc):
                raise
            self._params = dict(self._client.get_run(self._run_id).data.params)
            for key, value in list(params.items()):
                if self._params.get(key, value) != value:
                    del params[key]
                    self._param_changed(key, key, value, batch)
            self._log_param_batches(params)
        self._params.update(params)

    def _log_param_batches(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        chunk: list[Any] = []
        size = 0
        for param in (Param(k, v) for k, v in params.items()):
            item = _json_size(param.key) + _json_size(param.value) + 40
            if chunk and (len(chunk) == MAX_PARAMS_TAGS_PER_BATCH or size + item > REQUEST_BYTES_BUDGET):
                self._client.log_batch(self._run_id, params=chunk)
                chunk, size = [], 0
            chunk.append(param)
            size += item
        if chunk:
            self._client.log_batch(self._run_id, params=chunk)

    @staticmethod
    def _requests(metrics: list[Any], tags: Mapping[str, str]) -> Iterator[tuple[list[Any], list[Any]]]:
        """``(metrics, tags)`` per ``log_batch`` call: full batches within every MLflow limit."""
        from mlflow.entities import RunTag

        all_tags = [RunTag(k, v) for k, v in tags.items()]
        i = t = 0
        while i < len(metrics) or t < len(all_tags):
            size, first_tag = 0, t
            while t < len(all_tags) and t - first_tag < MAX_PARAMS_TAGS_PER_BATCH:
                item = _json_size(all_tags[t].key) + _json_size(all_tags[t].value) + 40
                if t > first_tag and size + item > REQUEST_BYTES_BUDGET:
                    break
                size += item
                t += 1
            request_tags = all_tags[first_tag:t]
            room = min(MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(request_tags))
            start = i
            while i < len(metrics) and i - start < room:
                item = _json_size(metrics[i].key) + 100
                if i > start and size + item > REQUEST_BYTES_BUDGET:
                    break
                size += item
                i += 1
            yield metrics[start:i], request_tags

    def _log_file(self, path: str, name: str) -> None:
        if not os.path.exists(path):
            raise RejectedError(f"artifact {name!r}: its staged copy {path} is missing")
        folder = os.path.dirname(name) or None
        if os.path.isdir(path):
            self._client.log_artifacts(self._run_id, path, name)
        else:
            self._client.log_artifact(self._run_id, path, folder)

    # -- errors ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _rejections(self) -> Iterator[None]:
        """MLflow refusing the data itself (HTTP 400-class) -> :class:`RejectedError`; anything
        else (connection errors, timeouts, 5xx, 401/403/408/429) stays transient. A 404 is about
        the data when the run is there (an artifact path the server cannot route, such as one
        with a newline) and transient otherwise (a proxy or server not ready yet)."""
        try:
            yield
        except RejectedError:
            raise
        except Exception as exc:
            status = _http_status(exc)
            if status == 404 and self._run_is_there():
                raise RejectedError(f"MLflow answered 404 for data of a run it holds: {str(exc)[:2000]}") from exc
            if status is not None and 400 <= status < 500 and status not in (401, 403, 404, 408, 429):
                raise RejectedError(f"MLflow refused the data: {str(exc)[:2000]}") from exc
            raise

    def _run_is_there(self) -> bool:
        try:
            return self._client.get_run(self._run_id).info.lifecycle_stage == "active"
        except Exception:
            return False



def _strict_json(cell: Any) -> Any:
    """A sample cell as strict JSON holds it (NaN and infinities become null)."""
    return None if isinstance(cell, float) and not math.isfinite(cell) else cell


def _as_stored(value: float) -> float:
    """A metric value as MLflow's SQL stores keep it (they have no infinities)."""
    return math.copysign(sys.float_info.max, value) if math.isinf(value) else value


def _masked(uri: str) -> str:
    """``uri`` with the password of ``scheme://user:password@host`` replaced by ``***``."""
    parts = urlsplit(uri)
    if not parts.password:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status an MLflow or ``requests`` error stands for (None if not an HTTP answer)."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):  # connection failures and timeouts are INTERNAL_ERROR (500)
        return exc.get_http_status_code()
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)
