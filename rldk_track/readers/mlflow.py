"""Read MLflow runs (a tracking server or a sqlite store) through ``MlflowClient``.

``mlflow://EXPERIMENT`` reads every run of the experiment (paged ``search_runs``);
``mlflow://EXPERIMENT/RUN`` one run, by MLflow run id, run name or rldk run id (tag
``rldk.run_id``). An experiment whose name contains ``/`` is matched whole first.

What rldk_track's MLflow backend writes is mapped back (the names are in
:mod:`rldk_track.vocab.mlflow`): keys it had to adapt through the ``rldk/mlflow_keys.json``
artifact; params from the full config in ``rldk/config.json`` (MLflow's params are strings,
possibly truncated) or else the params; alerts from ``rldk/alerts.jsonl`` or else the
``rldk.alert.<rule>`` tags (severity only); the ``alerts/count`` series (derived from the alerts)
is left out of the points. The summary is ``rldk/summary.json``, which also lists the metric
points the backend wrote to show summary numbers in MLflow's UI; those points are left out of the
series. A run without that artifact (recorded by an older rldk_track) has its non-numeric summary
values in the ``summary.<name>`` tags and its numbers only as points. The ``rldk.checkpoint`` tag
(the latest checkpoint verdict) and MLflow's own ``mlflow.*`` tags are dropped. Metric timestamps
are milliseconds.

Metric histories are fetched in bulk where MLflow allows it (``fetch``):

``"bulk"`` (default)
    a SQL store (sqlite, PostgreSQL...): every point of up to 500 runs in one query, through
    MLflow's own SQLAlchemy model of its ``metrics`` table, as plain rows (MLflow's API builds an
    ORM object per point, ten times slower); a server: MLflow's ``metrics/get-history-bulk``
    endpoint (plain JSON, the one MLflow's UI uses) per run and metric, several requests in
    flight; a history at that endpoint's 25,000-point cap is re-read with the paged
    ``get_metric_history``.
``"threads"``
    ``MlflowClient.get_metric_history`` per run and metric, several in flight.
``"client"``
    ``MlflowClient.get_metric_history`` one after another (the plain public API).

``benchmarks/readback.py`` measures the three side by side.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from rldk_track.alerts import ALERT_COUNT_METRIC
from rldk_track.normalize import flatten
from rldk_track.readers.progress import progress_bar
from rldk_track.readers.rundata import RunData, normalize_status
from rldk_track.vocab.mlflow import (
    ALERT_TAG_PREFIX,
    ALERTS_ARTIFACT,
    CONFIG_ARTIFACT,
    KEYS_ARTIFACT,
    OWN_TAG_PREFIXES,
    OWN_TAGS,
    PROJECT_TAG,
    RUN_ID_TAG,
    SAMPLES_FOLDER,
    SAMPLES_TAG_PREFIX,
    STORE_FILE,
    SUMMARY_ARTIFACT,
    SUMMARY_TAG_PREFIX,
    KeyMapFile,
    SummaryFile,
    TableFile,
    read_state_artifacts,
    samples_step,
    sqlite_path,
    sqlite_uri,
)

log = logging.getLogger("rldk_track")

FETCH_MODES = ("bulk", "threads", "client")
BULK_ENDPOINT = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
BULK_MAX_RESULTS = 25_000
DEFAULT_WORKERS = 8
SEARCH_PAGE = 1000


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else the store the MLflow backend uses by default: ``mlflow.db`` in
    the default run directory (``RLDK_TRACK_DIR``, else ``./rldk_runs``)."""
    from rldk_track.layout import resolve_run_dir

    return os.environ.get("MLFLOW_TRACKING_URI") or sqlite_uri(resolve_run_dir() / STORE_FILE)


def read_mlflow(
    ref: str | None,
    *,
    tracking_uri: str | None = None,
    progress: bool | None = None,
    fetch: str = "bulk",
    workers: int = DEFAULT_WORKERS,
) -> list[RunData]:
    """Runs named by ``ref`` (``EXPERIMENT[/RUN]``; None: every experiment) as :class:`RunData`."""
    from mlflow import MlflowClient

    if fetch not in FETCH_MODES:
        raise ValueError(f"fetch must be one of {', '.join(FETCH_MODES)}, not {fetch!r}")
    uri = tracking_uri or default_tracking_uri()
    database = sqlite_path(uri)
    if database is not None and not database.exists():
        raise FileNotFoundError(f"no MLflow store at {uri} (set MLFLOW_TRACKING_URI or pass --tracking-uri)")
    client = MlflowClient(uri)
    runs = _find_runs(client, ref)
    if not runs:
        return []
    keys_by_run = {run.info.run_id: sorted(run.data.metrics) for run in runs}
    total = sum(len(keys) for keys in keys_by_run.values())
    bar = progress_bar(None, total, f"mlflow metric histories ({uri})", progress) if total else None
    histories = _fetch(client, keys_by_run, fetch, workers, bar)
    if bar is not None and hasattr(bar, "close"):
        bar.close()
    experiments = {eid: client.get_experiment(eid).name for eid in {run.info.experiment_id for run in runs}}
    return [_run_data(client, uri, experiments[run.info.experiment_id], run, histories.get(run.info.run_id, {}))
            for run in runs]


def _find_runs(client: Any, ref: str | None) -> list[Any]:
    if ref is None:
        experiments = _all_experiments(client)
        run_ref = None
    else:
        experiment, run_ref = _experiment(client, ref)
        experiments = [experiment]
    ids = [e.experiment_id for e in experiments]
    if not ids:
        return []
    if run_ref is None:
        return _search(client, ids, "")
    try:
        run = client.get_run(run_ref)
        if run.info.experiment_id in ids:
            return [run]
    except Exception:  # not a run id: try the run name and the rldk run id
        pass
    quoted = run_ref.replace("'", "\\'")
    for filter_string in (f"attributes.run_name = '{quoted}'", f"tags.`{RUN_ID_TAG}` = '{quoted}'"):
        found = _search(client, ids, filter_string)
        if found:
            return found
    raise LookupError(f"no MLflow run {run_ref!r} (run id, run name or rldk run id) in experiment "
                      f"{experiments[0].name!r}")


def _experiment(client: Any, ref: str) -> tuple[Any, str | None]:
    """The experiment named (or numbered) ``ref``, else ``ref`` split as ``experiment/run``."""
    experiment = client.get_experiment_by_name(ref)
    if experiment is not None:
        return experiment, None
    if ref.isdigit():
        try:
            return client.get_experiment(ref), None
        except Exception:
            pass
    if "/" in ref:
        name, _, run_ref = ref.rpartition("/")
        experiment = client.get_experiment_by_name(name) or (client.get_experiment(name) if name.isdigit() else None)
        if experiment is not None:
            return experiment, run_ref
    names = sorted(e.name for e in _all_experiments(client))
    raise LookupError(f"no MLflow experiment {ref!r}; experiments: {', '.join(names) or '(none)'}")


def _all_experiments(client: Any) -> list[Any]:
    out, token = [], None
    while True:
        page = client.search_experiments(max_results=SEARCH_PAGE, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def _search(client: Any, experiment_ids: list[str], filter_string: str) -> list[Any]:
    """Every active run matching ``filter_string`` (``search_runs`` page by page), oldest first."""
    out, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=SEARCH_PAGE,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


# -- metric histories ---------------------------------------------------------------------------
History = list[tuple[int, float, float]]  # (step, value, timestamp ms)


def _fetch(client: Any, keys_by_run: dict[str, list[str]], fetch: str, workers: int, bar: Any) -> dict[str, dict[str, History]]:
    """``{run_id: {key: [(step, value, timestamp_ms)...]}}`` for every run's metric keys."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    if fetch == "bulk" and hasattr(store, "get_metric_history_bulk"):
        return _fetch_sql_bulk(store, keys_by_run, bar)
    if fetch == "bulk" and hasattr(store, "get_host_creds"):
        return _fetch_parallel(lambda run_id, key: _rest_bulk(client, store, run_id, key), keys_by_run, workers, bar)
    if fetch in ("bulk", "threads"):
        return _fetch_parallel(lambda run_id, key: _client_history(client, run_id, key), keys_by_run, workers, bar)
    out: dict[str, dict[str, History]] = {}
    for run_id, keys in keys_by_run.items():
        out[run_id] = {}
        for key in keys:
            out[run_id][key] = _client_history(client, run_id, key)
            _tick(bar)
    return out


def _tick(bar: Any, count: int = 1) -> None:
    if bar is not None and hasattr(bar, "update"):
        bar.update(count)


def _client_history(client: Any, run_id: str, key: str) -> History:
    return [(m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, key)]


def _fetch_parallel(get: Callable[[str, str], History], keys_by_run: dict[str, list[str]], workers: int, bar: Any) -> dict[str, dict[str, History]]:
    pairs = [(run_id, key) for run_id, keys in keys_by_run.items() for key in keys]
    out: dict[str, dict[str, History]] = {run_id: {} for run_id in keys_by_run}
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="rldk-mlflow-read") as pool:
        for (run_id, key), history in zip(pairs, pool.map(lambda pair: get(*pair), pairs)):
            out[run_id][key] = history
            _tick(bar)
    return out


def _rest_bulk(client: Any, store: Any, run_id: str, key: str) -> History:
    """One run's metric through the server's bulk endpoint (plain JSON); a history at the
    endpoint's cap, or a server without the endpoint, falls back to the paged public call."""
    from mlflow.utils.rest_utils import http_request

    response = http_request(
        store.get_host_creds(), BULK_ENDPOINT, "GET",
        params={"run_id": run_id, "metric_key": key, "max_results": BULK_MAX_RESULTS},
    )
    if response.status_code != 200:
        return _client_history(client, run_id, key)
    metrics = response.json().get("metrics", [])
    if len(metrics) >= BULK_MAX_RESULTS:
        return _client_history(client, run_id, key)
    return [(int(m.get("step", 0)), _float(m.get("value")), int(m.get("timestamp", 0))) for m in metrics]


def _float(value: Any) -> float:
    """A metric value from MLflow's JSON (NaN and infinities arrive as strings or null)."""
    if value is None:
        return math.nan
    return float(value)


def _fetch_sql_bulk(store: Any, keys_by_run: dict[str, list[str]], bar: Any) -> dict[str, dict[str, History]]:
    """Every point of the runs in one query per 500 runs, through MLflow's own SQLAlchemy model of
    its ``metrics`` table and its session (plain rows, no ORM object per point: about 10x faster
    than ``get_metric_history`` or ``get_metric_history_bulk``, which build one per point). NaN is
    stored as 0 with ``is_nan`` set, as MLflow's entities read it back."""
    try:
        from mlflow.store.tracking.dbmodels.models import SqlMetric
        from sqlalchemy import select
    except ImportError:  # a future MLflow without this model: the public API, a key at a time
        return _fetch_sql_entities(store, keys_by_run, bar)
    out: dict[str, dict[str, History]] = {run_id: {} for run_id in keys_by_run}
    run_ids = list(keys_by_run)
    columns = (SqlMetric.run_uuid, SqlMetric.key, SqlMetric.step, SqlMetric.value, SqlMetric.timestamp, SqlMetric.is_nan)
    nan = math.nan
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start:start + 500]
        query = select(*columns).where(SqlMetric.run_uuid.in_(chunk)).order_by(
            SqlMetric.run_uuid, SqlMetric.key, SqlMetric.timestamp, SqlMetric.step, SqlMetric.value)
        with store.ManagedSessionMaker() as session:
            for run_id, key, step, value, timestamp, is_nan in session.execute(query):
                out[run_id].setdefault(key, []).append((step, nan if is_nan else value, timestamp))
        _tick(bar, sum(len(keys_by_run[r]) for r in chunk))
    return out


def _fetch_sql_entities(store: Any, keys_by_run: dict[str, list[str]], bar: Any) -> dict[str, dict[str, History]]:
    """One ``get_metric_history_bulk`` call per metric key for all the runs that have it."""
    runs_by_key: dict[str, list[str]] = {}
    for run_id, keys in keys_by_run.items():
        for key in keys:
            runs_by_key.setdefault(key, []).append(run_id)
    out: dict[str, dict[str, History]] = {run_id: {} for run_id in keys_by_run}
    for key, run_ids in runs_by_key.items():
        for metric in store.get_metric_history_bulk(run_ids=run_ids, metric_key=key, max_results=2**62):
            out[metric.run_id].setdefault(key, []).append((metric.step, metric.value, metric.timestamp))
        _tick(bar, len(run_ids))
    return out


# -- one run ------------------------------------------------------------------------------------
def _run_data(client: Any, uri: str, experiment: str, run: Any, histories: dict[str, History]) -> RunData:
    info, data = run.info, run.data
    tags = dict(data.tags)
    files = _rldk_artifacts(client, info.run_id)
    keys: KeyMapFile = json.loads(files[KEYS_ARTIFACT]) if KEYS_ARTIFACT in files else {}
    metric_names = {key: name for name, key in keys.get("metric", [])}
    tag_names = {key: name for name, key in keys.get("tag", [])}
    param_names = {key: name for name, key in keys.get("param", [])}
    result = RunData(
        name=info.run_name or info.run_id, source=f"mlflow://{experiment}/{info.run_id} ({uri})",
        backend="mlflow", run_id=tags.get(RUN_ID_TAG, info.run_id), project=tags.get(PROJECT_TAG, ""),
        status=normalize_status(info.status),
        start_time=info.start_time / 1000.0 if info.start_time else None,
        end_time=info.end_time / 1000.0 if info.end_time else None,
        origin={"tracking_uri": uri, "mlflow_run_id": info.run_id, "experiment_id": info.experiment_id},
    )
    summary: SummaryFile | None = json.loads(files[SUMMARY_ARTIFACT]) if SUMMARY_ARTIFACT in files else None
    summary_points = {key: {_point(*point) for point in points}
                      for key, points in (summary or {}).get("points", {}).items()}
    for key, history in histories.items():
        name = metric_names.get(key, key)
        if name == ALERT_COUNT_METRIC:
            continue
        shown = summary_points.get(key)
        if shown:
            history = [h for h in history if _point(h[0], h[2], h[1]) not in shown]
            if not history:
                continue
        result.add_series(name, (h[0] for h in history), (h[1] for h in history), (h[2] / 1000.0 for h in history))
    if CONFIG_ARTIFACT in files:
        result.params = flatten(json.loads(files[CONFIG_ARTIFACT]))
    else:
        result.params = {param_names.get(k, k): v for k, v in data.params.items()}
    own_alerts = {}
    for key, value in tags.items():
        name = tag_names.get(key, key)
        if name.startswith(ALERT_TAG_PREFIX):
            own_alerts[name[len(ALERT_TAG_PREFIX):]] = value
        if name in OWN_TAGS or name.startswith(OWN_TAG_PREFIXES):
            continue
        if name.startswith(SUMMARY_TAG_PREFIX):
            if summary is None:
                result.summary[name[len(SUMMARY_TAG_PREFIX):]] = _maybe_json(value)
        else:
            result.tags[name] = value
    if summary is not None:
        result.summary = dict(summary.get("values", {}))
    if ALERTS_ARTIFACT in files:
        for line in files[ALERTS_ARTIFACT].splitlines():
            if line.strip():
                result.add_alert(**json.loads(line))
    else:
        for rule, severity in own_alerts.items():
            if severity != "cleared":
                result.add_alert(rule=rule, severity=severity, step=None, message="from the MLflow tag (step unknown)")
    if any(tag_names.get(k, k).startswith(SAMPLES_TAG_PREFIX) for k in tags):
        _read_samples(client, info.run_id, result)
    return result


def _read_samples(client: Any, run_id: str, result: RunData) -> None:
    """The run's sample sets: every ``rldk/samples/<name>/step_<N>.json`` (one download of the
    folder; ``latest.json`` repeats the last step and is skipped)."""
    try:
        with tempfile.TemporaryDirectory(prefix="rldk-mlflow-samples-") as tmp:
            root = Path(client.download_artifacts(run_id, SAMPLES_FOLDER, tmp))
            for path in sorted(root.glob("*/step_*.json")):
                step = samples_step(path.name)
                if step is None:
                    continue
                table: TableFile = json.loads(path.read_text(encoding="utf-8"))
                result.add_samples(step, path.parent.name, table.get("columns", []), table.get("data", []))
    except Exception as exc:  # an artifact store this machine cannot reach: the rest of the run still reads
        log.warning("rldk_track: could not read the samples of MLflow run %s: %s", run_id, exc)


def _rldk_artifacts(client: Any, run_id: str) -> dict[str, str]:
    """The text of the backend's own artifacts (key map, config, alert log, summary) that the run has."""
    try:
        return read_state_artifacts(client, run_id)
    except Exception as exc:  # an artifact store this machine cannot reach: read what MLflow's API has
        log.warning("rldk_track: could not read the rldk/ artifacts of MLflow run %s: %s", run_id, exc)
        return {}


def _point(step: int, timestamp: int, value: float) -> tuple[int, int, Any]:
    """A metric point as a set member (NaN made equal to NaN)."""
    return int(step), int(timestamp), "nan" if math.isnan(value) else float(value)


def _maybe_json(text: str) -> Any:
    """A ``summary.<name>`` tag's value: the backend writes lists and mappings as JSON."""
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text
