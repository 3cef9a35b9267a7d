"""TensorBoard: the names rldk_track's TensorBoard backend writes into a run directory and its
reader reads back.

The backend (:mod:`rldk_track.backends.tensorboard`) writes one directory per run under its log
dir; the reader (:mod:`rldk_track.readers.tensorboard`) maps it back through these names::

    <run dir>/events.out.tfevents.*     scalars, the text series below, hparams
    <run dir>/rldk/run.json             which run owns the directory (OwnerFile)
    <run dir>/rldk/alerts.jsonl         the alert log (rldk_track.alerts)
    <run dir>/rldk/renamed_tags.jsonl   names that had to change to become tags (RenamedTag)
    <run dir>/rldk/config.jsonl         every params and tags record, one a line (ConfigLine)
    <run dir>/rldk/samples.jsonl        every sample set, one a line (SamplesLine)
    <run dir>/artifacts/<name>          copies of the run's artifacts
"""

from __future__ import annotations

from typing import TypedDict

#: The log dir under the run directory when no ``log_dir`` option is given.
DEFAULT_LOG_DIR = "tensorboard"

OWNER_FILE = "rldk/run.json"
ALERTS_FILE = "rldk/alerts.jsonl"
RENAMED_FILE = "rldk/renamed_tags.jsonl"
SAMPLES_FILE = "rldk/samples.jsonl"
CONFIG_FILE = "rldk/config.jsonl"
ARTIFACTS_DIR = "artifacts"

#: Text series: the full config (fenced JSON), the run tags (a two-column markdown table), the
#: run's end status; ``alerts/<rule>`` (the alert's fields, then its evidence rows as a table),
#: ``checkpoint/health`` and ``summary/<name>`` (a summary value: a scalar when it is a number,
#: else text).
CONFIG_TAG = "config"
TAGS_TAG = "tags"
STATUS_TAG = "run/status"
ALERT_PREFIX = "alerts/"
CHECKPOINT_PREFIX = "checkpoint/"
SUMMARY_PREFIX = "summary/"
#: ``samples/<name>``: a sample set as a markdown table, at its step (the text TensorBoard's Text
#: tab shows; the exact rows are in :data:`SAMPLES_FILE`).
SAMPLES_PREFIX = "samples/"


class OwnerFile(TypedDict, total=False):
    """``rldk/run.json``: the run that claimed the directory (``status`` and ``end_time`` once it ended)."""

    run_id: str
    name: str
    project: str
    start_time: float
    status: str
    end_time: float


class SamplesLine(TypedDict):
    """One line of ``rldk/samples.jsonl``: a sample set's record ``seq`` (a replayed record is not
    written twice), step, name, columns and rows."""

    seq: int
    step: int
    name: str
    columns: list[str]
    rows: list[list[object]]


class ConfigLine(TypedDict):
    """One line of ``rldk/config.jsonl``: a params or tags record's ``seq`` (a replayed record is
    not written twice), ``kind`` (``"params"``/``"tags"``) and its values as logged. The run's
    config is every params line merged in ``seq`` order (``normalize.deep_merge``), its tags every
    tags line; the ``config``/``tags`` texts show the same, rewritten less often."""

    seq: int
    kind: str
    values: dict[str, object]


class RenamedTag(TypedDict):
    """One line of ``rldk/renamed_tags.jsonl``: a name, the tag it was written as, and why."""

    name: str
    tag: str
    reason: str
