"""The record model: everything a run produces, as small immutable values.

Every record carries ``seq`` (its position in the run's event log, assigned by the dispatcher's
log thread when it logs the record; ``-1`` until then) and ``wall_time`` (seconds since the epoch, taken when the caller logged it). Each has a stable
JSON form tagged with ``kind`` and ``schema_version``; the local event log is those lines, and
``rldk-track sync`` replays them. The per-step ``metrics`` line keeps the seed's Event fields
(``step, wall_time, metrics, rng, data_slice, model_info, notes``) so existing JSONL tooling still
reads it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Union

SCHEMA_VERSION = 1

SEVERITIES = ("info", "warning", "critical")
STATUSES = ("success", "failed", "killed")


@dataclass(frozen=True, slots=True)
class RunStart:
    """Who the run is and where its records go, so a later ``sync`` can reopen every tracker."""

    kind: ClassVar[str] = "run_start"
    seq: int
    wall_time: float
    run_id: str
    name: str
    project: str
    backends: Mapping[str, Mapping[str, Any]]
    rank: int = 0
    world_size: int = 1
    host: str = ""
    pid: int = 0
    rldk_version: str = ""


@dataclass(frozen=True, slots=True)
class Metrics:
    """Scalar values at one training step (the seed's Event)."""

    kind: ClassVar[str] = "metrics"
    seq: int
    wall_time: float
    step: int
    values: Mapping[str, float]
    rng: Mapping[str, Any] | None = None
    data_slice: Mapping[str, Any] | None = None
    model_info: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Params:
    """Run configuration (nested as given; each backend flattens it by its own rules). Params
    logged again extend the config: nested mappings merge, other values replace
    (:func:`rldk_track.normalize.deep_merge`)."""

    kind: ClassVar[str] = "params"
    seq: int
    wall_time: float
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Tags:
    """String labels on the run."""

    kind: ClassVar[str] = "tags"
    seq: int
    wall_time: float
    values: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Summary:
    """End-of-run values that are not a step series (e.g. ``train_runtime``)."""

    kind: ClassVar[str] = "summary"
    seq: int
    wall_time: float
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Evidence:
    """The few sample rows that show why an alert was raised: rows of the sample set ``name`` at
    ``step`` (the alert's step, or the nearest sampled step before it), chosen ``by`` one measure
    (``length``: longest first, ``reward``: highest reward, ``repetition``: most repeated,
    ``nonfinite_reward``, ``reward_outlier``; see :mod:`rldk_track.analyzers.evidence`).

    ``columns`` start with ``row`` (the row's position in the sample set, where its full text is)
    and end with the measure when the set has no column of that name; text cells are cut shorter
    than in the set. JSON form: ``{"name", "step", "by", "columns", "rows"}``.
    """

    name: str
    step: int
    by: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def as_dicts(self) -> list[dict[str, Any]]:
        """Each row as ``column -> cell``."""
        return [dict(zip(self.columns, row)) for row in self.rows]

    def to_json(self) -> dict[str, Any]:
        """The JSON form (an alert line's ``evidence``)."""
        return {"name": self.name, "step": self.step, "by": self.by, "columns": list(self.columns),
                "rows": [list(row) for row in self.rows]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "Evidence":
        """Rebuild from :meth:`to_json`'s form."""
        return cls(str(obj.get("name", "")), int(obj.get("step", 0)), str(obj.get("by", "")),
                   tuple(obj.get("columns") or ()), tuple(tuple(row) for row in obj.get("rows") or ()))


@dataclass(frozen=True, slots=True)
class Alert:
    """An analyzer's (or the user's) verdict about the run at a step.

    ``state`` is ``"raised"`` when the condition starts and ``"cleared"`` when the metric recovers.
    ``evidence``: the sample rows that show it, when the rule has some to show (:class:`Evidence`;
    in JSON its form, or null).
    """

    kind: ClassVar[str] = "alert"
    seq: int
    wall_time: float
    step: int
    rule: str
    severity: str
    message: str
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    action: str | None = None
    state: str = "raised"
    evidence: Evidence | None = None


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file (or a directory) attached to the run under ``name``.

    ``data`` holds bytes given by the caller until the dispatcher stages them to ``path`` in the
    run's local artifact folder; backends only ever see ``path``.
    """

    kind: ClassVar[str] = "artifact"
    seq: int
    wall_time: float
    name: str
    path: str | None = None
    data: bytes | None = field(default=None, repr=False)
    size: int | None = None


@dataclass(frozen=True, slots=True)
class CheckpointHealth:
    """The health verdict on one saved checkpoint."""

    kind: ClassVar[str] = "checkpoint_health"
    seq: int
    wall_time: float
    step: int
    path: str
    score: float
    issues: tuple[str, ...] = ()
    stats: Mapping[str, Any] = field(default_factory=dict)
    recommendations: tuple[str, ...] = ()


def checkpoint_folder(step: int) -> str:
    """Where a checkpoint's health files go among the run's artifacts (every tracker alike)."""
    return f"rldk/checkpoints/step_{step}"


@dataclass(frozen=True, slots=True)
class Samples:
    """Rows of samples at one step (prompts, completions, rewards...): a small table.

    ``columns`` names the cells of each row in ``rows``; cells are JSON values (text, numbers,
    booleans, None). ``name`` tells sample sets apart (``completions``, an alert's evidence).
    ``raw`` holds the caller's rows (as :meth:`rldk_track.run.Run.log_samples` took them) until the
    log thread bounds them (:class:`rldk_track.samples.SampleBounder`: rows a record, characters a
    cell) into ``columns`` and ``rows``, saying what it changed in ``notes``; like an artifact's
    ``data``, backends never see it.
    """

    kind: ClassVar[str] = "samples"
    seq: int
    wall_time: float
    step: int
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    name: str = "samples"
    notes: tuple[str, ...] = ()
    raw: Any = field(default=None, repr=False)

    def as_dicts(self) -> list[dict[str, Any]]:
        """Each row as ``column -> cell``."""
        return [dict(zip(self.columns, row)) for row in self.rows]


@dataclass(frozen=True, slots=True)
class RunEnd:
    """The run is over, with ``status`` one of :data:`STATUSES`."""

    kind: ClassVar[str] = "run_end"
    seq: int
    wall_time: float
    status: str


Record = Union[RunStart, Metrics, Params, Tags, Summary, Alert, Artifact, CheckpointHealth, Samples, RunEnd]

RECORD_TYPES: dict[str, type] = {
    cls.kind: cls
    for cls in (RunStart, Metrics, Params, Tags, Summary, Alert, Artifact, CheckpointHealth, Samples, RunEnd)
}

_TUPLE_FIELDS = {"notes", "issues", "recommendations", "columns"}


def to_json(record: Record, run_id: str) -> dict[str, Any]:
    """The record's JSON object, as one event-log line holds it."""
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "kind": record.kind}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if f.name in ("data", "raw"):
            continue
        if f.name in _TUPLE_FIELDS:
            value = list(value)
        elif f.name == "rows":
            value = [list(row) for row in value]
        elif f.name == "evidence":
            value = value.to_json() if value is not None else None
        out[f.name] = value
    if isinstance(record, Metrics):
        # The seed's Event schema: ``metrics`` and always-present dicts, run id in model_info.
        out["metrics"] = out.pop("values")
        out["rng"] = record.rng or {}
        out["data_slice"] = record.data_slice or {}
        out["model_info"] = {"run_id": run_id, **(record.model_info or {})}
    return out


def from_json(obj: Mapping[str, Any]) -> Record:
    """Rebuild a record from its JSON object; a line without ``kind`` is a seed Event (metrics)."""
    kind = obj.get("kind", "metrics")
    cls = RECORD_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown record kind {kind!r}")
    data = dict(obj)
    if cls is Metrics:
        data["values"] = data.pop("metrics", data.get("values", {}))
        data.setdefault("seq", -1)
        data.setdefault("wall_time", 0.0)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    for name in _TUPLE_FIELDS & kwargs.keys():
        kwargs[name] = tuple(kwargs[name] or ())
    if cls is Samples:
        kwargs["rows"] = tuple(tuple(row) for row in kwargs.get("rows") or ())
    if cls is Alert and kwargs.get("evidence") is not None:
        kwargs["evidence"] = Evidence.from_json(kwargs["evidence"])
    return cls(**kwargs)
