"""MLflow: the names rldk_track's MLflow backend stores and its reader reads back.

The backend (:mod:`rldk_track.backends.mlflow`) sets these tags and logs these artifacts on every
run; the reader (:mod:`rldk_track.readers.mlflow`) maps a run back through them. Alert tags and
``rldk.health`` follow :mod:`rldk_track.alerts`.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, TypedDict

#: The embedded store of a run directory, and the artifacts folder next to a sqlite store.
STORE_FILE = "mlflow.db"
ARTIFACTS_FOLDER = "mlartifacts"

#: The full config (MLflow's params are strings, possibly truncated).
CONFIG_ARTIFACT = "rldk/config.json"
#: The alert log, one alert's JSON form a line (:func:`rldk_track.alerts.alert_json`).
ALERTS_ARTIFACT = "rldk/alerts.jsonl"
#: Names that had to change to become MLflow keys (:class:`KeyMapFile`).
KEYS_ARTIFACT = "rldk/mlflow_keys.json"
#: The run's summary and the metric points that show it in MLflow's UI (:class:`SummaryFile`).
SUMMARY_ARTIFACT = "rldk/summary.json"
#: Sample sets (:class:`rldk_track.records.Samples`): ``rldk/samples/<name>/step_<N>.json`` per
#: sampled step and ``rldk/samples/<name>/latest.json`` (the latest step's), each in the table JSON
#: that ``MlflowClient.log_table`` writes (:class:`TableFile`); MLflow's UI shows a file as a table
#: when the run's ``mlflow.loggedArtifacts`` tag lists it with type ``table``.
SAMPLES_FOLDER = "rldk/samples"
SAMPLES_LATEST_FILE = "latest.json"
LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"


def samples_file(name: str, step: int) -> str:
    """The artifact path of sample set ``name`` at ``step`` (zero-padded so files sort by step)."""
    return f"{SAMPLES_FOLDER}/{name}/step_{step:08d}.json"


def samples_step(path: str) -> int | None:
    """The step of a :func:`samples_file` path (None for any other file)."""
    stem = path.rsplit("/", 1)[-1]
    if stem.startswith("step_") and stem.endswith(".json") and stem[5:-5].isdigit():
        return int(stem[5:-5])
    return None


#: An alert's evidence rows (:class:`rldk_track.records.Evidence`) as table JSON (:class:`TableFile`)
#: beside the alert log, one file per raised alert that has evidence (:func:`evidence_file`), named
#: by the tag ``rldk.evidence.<rule>`` (the latest of the rule) and listed as a table in
#: ``mlflow.loggedArtifacts``.
EVIDENCE_FOLDER = "rldk/alerts"


def evidence_file(rule: str, step: int) -> str:
    """The artifact path of the evidence of ``rule``'s alert at ``step`` (a rule ``a/b`` gets a
    folder; characters other than letters, digits, ``_ - . /`` become ``_``, and no part is ``..``,
    so a reward function called ``<lambda>`` still names a file inside the folder)."""
    parts = [re.sub(r"[^A-Za-z0-9_.-]", "_", part) or "_" for part in rule.split("/")]
    return f"{EVIDENCE_FOLDER}/{'/'.join('_' if p in ('.', '..') else p for p in parts)}_{step}.json"


#: The artifacts that hold the run's state (rewritten whole when it changes).
STATE_ARTIFACTS = (KEYS_ARTIFACT, CONFIG_ARTIFACT, ALERTS_ARTIFACT, SUMMARY_ARTIFACT)

#: Tags the backend sets on every run.
RUN_ID_TAG = "rldk.run_id"
PROJECT_TAG = "rldk.project"
RANK_TAG = "rldk.rank"
WORLD_SIZE_TAG = "rldk.world_size"
VERSION_TAG = "rldk.version"
#: The run's health (:func:`rldk_track.alerts.run_health`).
HEALTH_TAG = "rldk.health"
#: ``rldk.samples.<name>`` = the artifact path of the latest sample set called ``name``.
SAMPLES_TAG_PREFIX = "rldk.samples."
#: ``rldk.evidence.<rule>`` = the artifact path of the evidence of the rule's latest alert.
EVIDENCE_TAG_PREFIX = "rldk.evidence."
#: The MLflow keys of params that had to be truncated, comma-separated.
PARAMS_TRUNCATED_TAG = "rldk.params_truncated"
#: The latest checkpoint verdict in brief (``rldk.checkpoint.health`` is the analyzer's own
#: ok|warning|critical tag, so it is not overwritten).
CHECKPOINT_TAG = "rldk.checkpoint"
#: ``rldk.alert.<rule>`` = the rule's state (:func:`rldk_track.alerts.rule_state`);
#: ``rldk.param_changed.<name>`` = a param's later value; ``summary.<name>`` = a summary value
#: that is not a number.
ALERT_TAG_PREFIX = "rldk.alert."
PARAM_CHANGED_TAG_PREFIX = "rldk.param_changed."
SUMMARY_TAG_PREFIX = "summary."
#: Tags that are bookkeeping, not the user's: the backend's own, and MLflow's ``mlflow.*``.
OWN_TAGS = frozenset({RUN_ID_TAG, PROJECT_TAG, RANK_TAG, WORLD_SIZE_TAG, VERSION_TAG, HEALTH_TAG,
                      PARAMS_TRUNCATED_TAG, CHECKPOINT_TAG})
OWN_TAG_PREFIXES = ("mlflow.", ALERT_TAG_PREFIX, PARAM_CHANGED_TAG_PREFIX, SAMPLES_TAG_PREFIX, EVIDENCE_TAG_PREFIX)

#: MLflow 3 keeps an experiment's kind in this experiment tag; the backend sets it to "machine
#: learning" (the UI's other kinds are ``genai_development``, ``finetuning``, ...) on the experiments
#: it creates, so tools that go by the tag treat RLHF runs as training runs. An existing
#: experiment's tag is left as its owner set it.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_EXPERIMENT_KIND = "custom_model_development"
#: MLflow 3.17's UI ignores that tag: a per-browser "GenAI | Model training" switch picks the
#: view, GenAI ("Overview", traces, evaluations) unless this query asks for training (runs, charts).
TRAINING_VIEW_QUERY = "workflowType=machine_learning"


def ui_url(server: str, experiment_id: str | None = None) -> str:
    """The address of MLflow's UI at ``server`` that opens in the training view: on the
    experiment's runs when ``experiment_id`` is known, else on the experiments list."""
    page = f"experiments/{experiment_id}" if experiment_id else "experiments"
    return f"{server.rstrip('/')}/#/{page}?{TRAINING_VIEW_QUERY}"


class KeyMapFile(TypedDict, total=False):
    """``rldk/mlflow_keys.json``: per namespace, ``[original name, MLflow key]`` pairs of the names
    that changed."""

    metric: list[list[str]]
    param: list[list[str]]
    tag: list[list[str]]


class TableFile(TypedDict):
    """A sample set as ``log_table`` stores a table (pandas' ``orient="split"`` JSON without the
    index): column names and rows; non-finite numbers are null (the UI parses strict JSON)."""

    columns: list[str]
    data: list[list[Any]]


class SummaryFile(TypedDict):
    """``rldk/summary.json``: the summary values as given, and per metric key the points
    ``[step, timestamp ms, value as stored]`` that were logged only to show them in the UI."""

    values: dict[str, Any]
    points: dict[str, list[list[float]]]


def sqlite_uri(path: str | os.PathLike[str]) -> str:
    """The tracking URI of the sqlite store in the file ``path``."""
    return f"sqlite:///{Path(path).absolute()}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for any other store)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0]).absolute()


def read_state_artifacts(client: Any, run_id: str) -> dict[str, str]:
    """The text of each artifact in :data:`STATE_ARTIFACTS` that the MLflow run has, by name: what
    a resumed run picks up and what readers map the run back with."""
    present = {f.path for f in client.list_artifacts(run_id, "rldk")}
    with tempfile.TemporaryDirectory(prefix="rldk-mlflow-") as tmp:
        return {name: Path(client.download_artifacts(run_id, name, tmp)).read_text(encoding="utf-8")
                for name in STATE_ARTIFACTS if name in present}
