"""Read TensorBoard log directories: every run (a directory holding event files) under a log dir.

Event files are read with TensorBoard's own ``EventAccumulator``, keeping every scalar and tensor
event (``size_guidance`` 0; images, audio and histograms are not read, so one of each is kept) and
every point (``purge_orphaned_data=False``: TensorBoard's view drops points after a step that goes
back, the event file and this reader do not).

What rldk_track's TensorBoard backend writes is mapped back (names in
:mod:`rldk_track.vocab.tensorboard`): scalar tags are metrics (renamed ones mapped back through
``rldk/renamed_tags.jsonl``), except ``summary/<name>`` (the run's summary); ``rldk/run.json``
gives the run id, name, project, times and status; the ``config`` text holds the full config
(JSON), the ``tags`` text the run tags (both exactly from ``rldk/config.jsonl`` when it is
there: the texts are rewritten less often), ``rldk/alerts.jsonl`` the alert log. A run directory
written by anything else (PyTorch's ``SummaryWriter``, transformers' ``TensorBoardCallback``)
reads as its path under the log dir, with its scalars (simple values and scalar tensors) and
hparams as params. Scalars are float32 in TensorBoard, so values read back are float32-exact, not
float64.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from rldk_track.normalize import deep_merge, flatten
from rldk_track.readers.progress import progress_bar
from rldk_track.readers.rundata import RunData, normalize_status
from rldk_track.vocab.tensorboard import (
    ALERTS_FILE,
    CONFIG_FILE,
    CONFIG_TAG,
    OWNER_FILE,
    RENAMED_FILE,
    SAMPLES_FILE,
    STATUS_TAG,
    SUMMARY_PREFIX,
    TAGS_TAG,
    OwnerFile,
)


def is_tensorboard_source(path: Path) -> bool:
    """True when ``path`` (or a directory below it) holds an event file."""
    return bool(run_dirs(path))


def run_dirs(logdir: str | Path) -> list[Path]:
    """Every directory under ``logdir`` (itself included) with an event file in it, sorted."""
    root = Path(logdir)
    if root.is_file():
        return [root.parent] if "tfevents" in root.name else []
    found = {p.parent for p in root.rglob("*tfevents*") if p.is_file()}
    return sorted(found)


def read_tensorboard(logdir: str | Path, progress: bool | None = None) -> list[RunData]:
    """Every run under ``logdir``, named by ``rldk/run.json`` or by its path under ``logdir``."""
    root = Path(logdir)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    dirs = run_dirs(root)
    base = root if root.is_dir() else root.parent
    return [read_run_dir(d, base) for d in progress_bar(dirs, len(dirs), "tensorboard runs", progress)]


def read_run_dir(run_dir: Path, logdir: Path | None = None) -> RunData:
    """One TensorBoard run directory as a :class:`RunData`."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    guidance = {**{kind: 1 for kind in ea.DEFAULT_SIZE_GUIDANCE}, ea.SCALARS: 0, ea.TENSORS: 0}
    accumulator = ea.EventAccumulator(str(run_dir), size_guidance=guidance, purge_orphaned_data=False)
    accumulator.Reload()
    relative = run_dir.relative_to(logdir).as_posix() if logdir and run_dir != logdir else run_dir.name
    owner: OwnerFile = _json_file(run_dir / OWNER_FILE) or {}
    run = RunData(
        name=owner.get("name") or relative, source=str(run_dir), backend="tensorboard",
        run_id=str(owner.get("run_id") or ""), project=str(owner.get("project") or ""),
        start_time=owner.get("start_time"), end_time=owner.get("end_time"), origin={"log_dir": str(run_dir.absolute())},
    )
    renamed = {entry["tag"]: entry["name"] for entry in _json_lines(run_dir / RENAMED_FILE) if "tag" in entry}
    tags = accumulator.Tags()
    for tag in tags.get("scalars", []):
        events = accumulator.Scalars(tag)
        if tag.startswith(SUMMARY_PREFIX) and tag not in renamed:
            run.summary[tag[len(SUMMARY_PREFIX):]] = events[-1].value
            continue
        run.add_series(renamed.get(tag, tag), (e.step for e in events), (e.value for e in events),
                       (e.wall_time for e in events))
    texts = _plugin_tags(accumulator, "text")
    scalar_tensors = _plugin_tags(accumulator, "scalars")
    for tag in tags.get("tensors", []):
        if tag in scalar_tensors:
            _add_scalar_tensors(run, renamed.get(tag, tag), accumulator.Tensors(tag))
        elif tag in texts:
            _apply_text(run, renamed.get(tag, tag), accumulator.Tensors(tag))
    _apply_config_lines(run, _json_lines(run_dir / CONFIG_FILE))
    _apply_hparams(run, accumulator)
    run.status = normalize_status(owner.get("status") or run.status or None)
    for alert in _json_lines(run_dir / ALERTS_FILE):
        run.add_alert(**alert)
    for line in _json_lines(run_dir / SAMPLES_FILE):
        run.add_samples(line.get("step", 0), line.get("name") or "samples", line.get("columns") or [], line.get("rows") or [])
    if run.start_time is None:
        try:
            run.start_time = accumulator.FirstEventTimestamp()
        except ValueError:
            pass
    return run


def _plugin_tags(accumulator: Any, plugin: str) -> dict[str, bytes]:
    """``{tag: plugin content}`` of one plugin (empty when the run has none of its data)."""
    try:
        return accumulator.PluginTagToContent(plugin)
    except KeyError:
        return {}


def _add_scalar_tensors(run: RunData, name: str, events: list[Any]) -> None:
    from tensorboard.util import tensor_util

    values = [float(tensor_util.make_ndarray(e.tensor_proto).item()) for e in events]
    run.add_series(name, (e.step for e in events), values, (e.wall_time for e in events))


def _text(event: Any) -> str:
    strings = event.tensor_proto.string_val
    return strings[0].decode("utf-8", "replace") if strings else ""


def _apply_text(run: RunData, tag: str, events: list[Any]) -> None:
    """Config, tags, status and text summaries written by rldk_track's backend (last one wins)."""
    if not events:
        return
    last = _text(events[-1])
    if tag == CONFIG_TAG:
        try:
            run.params = flatten(json.loads(_unfence(last)))
        except ValueError:
            pass
    elif tag == TAGS_TAG:
        run.tags = parse_markdown_table(last)
    elif tag == STATUS_TAG:
        run.status = last.strip()
    elif tag.startswith(SUMMARY_PREFIX):
        text = _unfence(last)
        try:
            run.summary[tag[len(SUMMARY_PREFIX):]] = json.loads(text) if last.startswith("`") else text
        except ValueError:
            run.summary[tag[len(SUMMARY_PREFIX):]] = text


def _apply_config_lines(run: RunData, lines: list[dict[str, Any]]) -> None:
    """The exact config and tags from ``rldk/config.jsonl``: every params line merged in ``seq``
    order, every tags line (a replayed record's line is there once)."""
    config: dict[str, Any] = {}
    tags: dict[str, str] = {}
    seen: set[int] = set()
    for line in sorted((x for x in lines if isinstance(x.get("seq"), int)), key=lambda x: x["seq"]):
        values = line.get("values")
        if line["seq"] in seen or not isinstance(values, dict):
            continue
        seen.add(line["seq"])
        if line.get("kind") == "params":
            deep_merge(config, values)
        elif line.get("kind") == "tags":
            tags.update({str(k): str(v) for k, v in values.items()})
    if config:
        run.params = flatten(config)
    if tags:
        run.tags = tags


def _apply_hparams(run: RunData, accumulator: Any) -> None:
    """Params from the hparams session start, when no ``config`` text gave them; the run status
    from the session end, when ``rldk/run.json`` did not."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    for content in _plugin_tags(accumulator, "hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        kind = data.WhichOneof("data")
        if kind == "session_start_info" and not run.params:
            for key, value in data.session_start_info.hparams.items():
                which = value.WhichOneof("kind")
                run.params[key] = getattr(value, which) if which else None
        elif kind == "session_end_info" and not run.status:
            status = data.session_end_info.status
            run.status = "success" if status == api_pb2.STATUS_SUCCESS else "failed" if status else ""
            run.end_time = run.end_time or data.session_end_info.end_time_secs or None


_FENCE = re.compile(r"^(`{3,})[^\n]*\n(.*)\n\1\s*$", re.S)
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _unfence(text: str) -> str:
    match = _FENCE.match(text.strip())
    return match.group(2) if match else text


def parse_markdown_table(text: str) -> dict[str, str]:
    """The two-column ``| key | value |`` table the backend writes, back as a dict (its cell
    escaping undone: ``\\|``, ``\\\\`` and ``<br>``)."""
    rows: dict[str, str] = {}
    for line in text.splitlines()[2:]:
        line = line.strip()
        if not (line.startswith("|") and line.endswith("|")):
            continue
        cells = _CELL_SPLIT.split(line[1:-1])
        if len(cells) != 2:
            continue
        key, value = (_uncell(c.strip()) for c in cells)
        rows[key] = value
    return rows


def _uncell(cell: str) -> str:
    out, i = [], 0
    while i < len(cell):
        if cell[i] == "\\" and i + 1 < len(cell) and cell[i + 1] in "\\|":
            out.append(cell[i + 1])
            i += 2
        elif cell.startswith("<br>", i):
            out.append("\n")
            i += 4
        else:
            out.append(cell[i])
            i += 1
    return "".join(out)


def _json_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _json_lines(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
