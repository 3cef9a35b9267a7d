"""Where runs come from: a source string names a tracker store, :func:`load_runs` reads them all.

Sources (see ``docs/compare.md``):

=====================================  =====================================================
``./rldk_runs``, ``run.jsonl``          rldk_track event logs (or a seed Event JSONL file)
``mlflow://EXPERIMENT[/RUN]``           MLflow runs, against ``tracking_uri`` /
                                        ``MLFLOW_TRACKING_URI`` (server or sqlite)
``path/to/mlflow.db``                   every run in that MLflow sqlite store
``tensorboard://LOGDIR``, a log dir     every TensorBoard run (directory of event files) under it
``path/to/wandb``, ``offline-run-*``    W&B offline runs
``wandb://ENTITY/PROJECT[/RUN]``        W&B runs through ``wandb.Api()`` (needs an API key)
``trackio://PROJECT[/RUN]``             trackio runs in its local store (``TRACKIO_DIR``), RUN
                                        a run name or id
``jsonl://PATH``                        force the event-log reader for PATH
=====================================  =====================================================

A directory is read by the first reader that recognises it, in the order event log, W&B,
TensorBoard; ``rldk_runs`` itself is the event log (the run's complete write-ahead log).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from rldk_track.readers.rundata import RunData

if TYPE_CHECKING:
    from rldk_track.readers.runset import RunSet


class SourceError(ValueError):
    """A source that names nothing readable; the message says what was looked for."""


def load_runs(
    sources: str | Path | Sequence[str | Path],
    *,
    tracking_uri: str | None = None,
    progress: bool | None = None,
) -> "RunSet":
    """Read every run named by ``sources`` into one :class:`~rldk_track.readers.runset.RunSet`.

    ``frame, runs = load_runs(...)`` unpacks the long frame (``run, step, metric, value,
    wall_time``) and the runs table; ``.alerts`` holds the alerts. ``tracking_uri`` is used for
    ``mlflow://`` sources (default ``MLFLOW_TRACKING_URI``, else the default local store
    ``mlflow.db`` in ``RLDK_TRACK_DIR`` or ``./rldk_runs``). ``progress`` shows progress bars
    (None: when stderr is a terminal). Raises :class:`SourceError` for a source with no runs.
    """
    from rldk_track.readers.runset import build_runset

    if isinstance(sources, (str, Path)):
        sources = [sources]
    runs: list[RunData] = []
    for source in sources:
        found = read_source(str(source), tracking_uri=tracking_uri, progress=progress)
        if not found:
            raise SourceError(f"no runs found in {source}")
        runs.extend(found)
    return build_runset(runs)


def read_source(source: str, *, tracking_uri: str | None = None, progress: bool | None = None) -> list[RunData]:
    """The runs of one source string, as :class:`RunData` (see the module docstring)."""
    reader = resolve_source(source)
    return reader(source, tracking_uri=tracking_uri, progress=progress)


Reader = Callable[..., list[RunData]]


def resolve_source(source: str) -> Reader:
    """The reader function for ``source``; :class:`SourceError` when none fits."""
    if source.startswith("mlflow://"):
        return _mlflow
    if source.startswith("wandb://"):
        return _wandb_online
    if source.startswith("tensorboard://"):
        return _tensorboard
    if source.startswith("trackio://"):
        return _trackio
    if source.startswith("jsonl://"):
        return _event_log
    path = Path(source)
    if not path.exists():
        raise SourceError(
            f"{source} is neither an existing path nor a tracker URI "
            "(mlflow://EXPERIMENT[/RUN], wandb://ENTITY/PROJECT[/RUN], tensorboard://LOGDIR, trackio://PROJECT[/RUN])"
        )
    from rldk_track.readers import eventlog, tensorboard, wandb

    if path.is_file() and path.suffix == ".db":
        return _mlflow
    if eventlog.is_event_log_source(path):
        return _event_log
    if wandb.is_offline_source(path):
        return _wandb_offline
    if tensorboard.is_tensorboard_source(path):
        return _tensorboard
    raise SourceError(
        f"{source} holds no event log (*.jsonl), W&B run (run-*.wandb) or TensorBoard event file "
        "(events.out.tfevents.*)"
    )


def _strip(source: str, scheme: str) -> str:
    return source[len(scheme):] if source.startswith(scheme) else source


def _event_log(source: str, **_: object) -> list[RunData]:
    from rldk_track.readers.eventlog import read_event_logs

    return read_event_logs(_strip(source, "jsonl://"))


def _mlflow(source: str, *, tracking_uri: str | None = None, progress: bool | None = None) -> list[RunData]:
    from rldk_track.readers.mlflow import read_mlflow
    from rldk_track.vocab.mlflow import sqlite_uri

    if not source.startswith("mlflow://"):  # a sqlite store file: every experiment in it
        return read_mlflow(None, tracking_uri=sqlite_uri(Path(source)), progress=progress)
    ref = _strip(source, "mlflow://").strip("/")
    if not ref:
        raise SourceError("mlflow:// needs an experiment: mlflow://EXPERIMENT[/RUN]")
    return read_mlflow(ref, tracking_uri=tracking_uri, progress=progress)


def _tensorboard(source: str, *, progress: bool | None = None, **_: object) -> list[RunData]:
    from rldk_track.readers.tensorboard import read_tensorboard

    return read_tensorboard(_strip(source, "tensorboard://"), progress=progress)


def _trackio(source: str, *, progress: bool | None = None, **_: object) -> list[RunData]:
    from rldk_track.readers.trackio import read_trackio

    project, _, run = _strip(source, "trackio://").strip("/").partition("/")
    if not project:
        raise SourceError("trackio:// needs a project: trackio://PROJECT[/RUN]")
    return read_trackio(project, run or None, progress=progress)


def _wandb_offline(source: str, *, progress: bool | None = None, **_: object) -> list[RunData]:
    from rldk_track.readers.wandb import read_wandb_offline

    return read_wandb_offline(source, progress=progress)


def _wandb_online(source: str, *, progress: bool | None = None, **_: object) -> list[RunData]:
    from rldk_track.readers.wandb import read_wandb_online

    parts = _strip(source, "wandb://").strip("/").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise SourceError("wandb:// needs ENTITY/PROJECT[/RUN], e.g. wandb://my-team/rlhf/abc123")
    return read_wandb_online(parts[0], parts[1], parts[2] if len(parts) == 3 else None, progress=progress)

