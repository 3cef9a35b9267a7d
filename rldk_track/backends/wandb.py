"""Weights & Biases: one W&B run per rldk run, with W&B's rules applied here and nowhere else.

How records map onto W&B (``docs/backends/wandb.md`` has the full story):

* metrics -> one ``run.log`` per record, with the training step as the value ``global_step``
  (declared as every metric's x-axis) and the record's ``wall_time`` as ``_timestamp``; W&B's own
  ``_step`` only counts rows, so steps that go backwards are kept, at their ``global_step``;
* params -> ``run.config`` (nested as given, values may change); tags -> W&B run tags
  ``key=value``; summary -> ``run.summary``;
* alerts -> summary ``rldk/alert/<rule>`` = severity (``cleared`` when the rule clears),
  ``rldk/health`` = ok|warning|critical, metric ``alerts/count`` at the alert's step, its evidence
  rows as a ``wandb.Table`` ``alerts/<rule>/evidence`` in the same row, and at the end an
  ``alerts`` table artifact;
* checkpoint health -> summary ``rldk/checkpoint`` and a JSON report artifact (no metric: the
  ``checkpoint/*`` series come from the analyzer's own metrics record);
* samples -> a ``wandb.Table`` (mixed types allowed) under ``samples/<name>`` in a history row at
  the samples' ``global_step``, so the W&B UI shows each step's table in the run's panels;
* artifacts -> ``wandb.Artifact`` (file or directory); run end -> ``run.finish(exit_code)``.

W&B's rules applied to names: keys starting with ``_`` are W&B's own (``_step``, ``_runtime``,
``_timestamp`` are overwritten) so the underscores are dropped; control characters become ``_``;
an empty key becomes ``unnamed``; keys are capped at 256 characters; metric names are
case-insensitive in W&B, so two names that differ only in case (or that an adaptation makes
equal) get a short hash suffix instead of merging. Every adaptation is reported once and the
map is kept in ``<dir>/wandb/rldk-<run_id>.json`` (so a resumed run maps names the same way)
and logged as an artifact at the end. Tags are cut to W&B's 64 characters (the full value goes
to the summary), run/group/project names to 128, artifact names to W&B's characters.

``wandb.init`` runs on this backend's worker thread with ``reinit="create_new"``, and only the
returned Run object's methods are used, so several rldk runs and the user's own ``wandb.run``
live side by side in one process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

from rldk_track.alerts import ALERT_COUNT_METRIC, ALERT_FIELDS, AlertLog, alert_cells, rule_state
from rldk_track.backends.base import Backend, CannotReopen, RejectedError, Resume, RunInfo
from rldk_track.backends.wandb_offline import WRITE_WAIT_S, WandbOfflineRun, read_offline_run, wait_until_written
from rldk_track.normalize import deep_merge
from rldk_track.redact import redact
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
)
from rldk_track.vocab.wandb import (
    ALERT_KEY_PREFIX,
    ALERTS_ARTIFACT_TYPE,
    ALERTS_TABLE,
    ARTIFACT_TYPE,
    CHECKPOINT_ARTIFACT_TYPE,
    CHECKPOINT_FILE,
    CHECKPOINT_KEY,
    EXIT_CODES,
    GLOBAL_STEP,
    HEALTH_KEY,
    KEY_MAP_FILE,
    OWN_PREFIX,
    SAMPLES_PREFIX,
    STATUS_KEY,
    TAG_KEY_PREFIX,
    WANDB_FOLDER,
    WANDB_TIMESTAMP,
    KeyMapFile,
    SideStateFile,
    evidence_key,
    side_state_name,
)

log = logging.getLogger("rldk_track")

#: Longest metric/summary/config key we send (W&B documents no limit; longer keys are unusable
#: in its UI and have failed server-side processing).
MAX_KEY_CHARS = 256
#: W&B rejects run tags outside 1..64 characters (HTTP 400 on sync, ``Tags not updated`` locally).
MAX_TAG_CHARS = 64
#: W&B's limit for run display names, groups, project names and artifact names.
MAX_NAME_CHARS = 128
#: Longest string kept in config/summary (W&B recommends values < 1 MB and config < 10 MB).
MAX_VALUE_CHARS = 100_000
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_NOT_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_PROJECT_BAD_CHARS = re.compile(r"[/\\#?%:]")
_MAX_ID_CHARS = 64


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _with_suffix(text: str, original: str, limit: int, sep: str = "~") -> str:
    """``text`` cut to fit ``limit`` with a hash of ``original`` appended: unique and stable."""
    suffix = sep + _digest(original)
    return text[: limit - len(suffix)] + suffix


def metric_key(name: str) -> str:
    """The W&B history/summary key for ``name`` by W&B's character and length rules (before
    collision handling): no leading ``_``, no control characters, not empty, <= 256 chars."""
    key = _CONTROL_CHARS.sub("_", name).lstrip("_").strip() or "unnamed"
    return key if len(key) <= MAX_KEY_CHARS else _with_suffix(key, name, MAX_KEY_CHARS)


def config_key(name: str) -> str:
    """A top-level config key: W&B strips ``-`` from both ends and hides ``_``-prefixed keys."""
    key = _CONTROL_CHARS.sub("_", name).strip().strip("-").lstrip("_").strip() or "unnamed"
    return key if len(key) <= MAX_KEY_CHARS else _with_suffix(key, name, MAX_KEY_CHARS)


def wandb_id(run_id: str) -> str:
    """The W&B run id for an rldk run id: W&B refuses ``/ \\ # ? % : ; , '`` and whitespace."""
    clean = _NOT_ID_CHARS.sub("-", run_id).strip("-.") or "run"
    if clean == run_id and len(clean) <= _MAX_ID_CHARS:
        return clean
    return _with_suffix(clean, run_id, _MAX_ID_CHARS, sep="-")


def artifact_name(name: str) -> str:
    """A W&B artifact name: only letters, digits, ``-``, ``_`` and ``.``, at most 128 chars."""
    clean = re.sub(r"-{2,}", "-", _NOT_ID_CHARS.sub("-", name)).strip("-") or "artifact"
    return clean if len(clean) <= MAX_NAME_CHARS else _with_suffix(clean, name, MAX_NAME_CHARS, sep="-")


def project_name(name: str) -> str:
    """A W&B project name: at most 128 characters, none of ``/ \\ # ? % :``."""
    clean = _PROJECT_BAD_CHARS.sub("-", name).strip() or "rlhf"
    return clean[:MAX_NAME_CHARS]


def tag_text(key: str, value: str) -> str:
    """The W&B run tag for an rldk tag: ``key=value`` (or ``key`` for an empty value)."""
    text = _CONTROL_CHARS.sub(" ", f"{key}={value}" if value != "" else key).strip() or "unnamed"
    return text if len(text) <= MAX_TAG_CHARS else text[: MAX_TAG_CHARS - 1] + "…"


class _Names:
    """Maps one namespace of rldk names onto W&B keys without ever merging two names.

    ``rule`` adapts a name to W&B's rules; a result that is taken (compared case-insensitively
    where W&B is case-insensitive) or reserved gets a hash suffix of the original name. The
    map persists with the backend's side state so a resumed run maps the same way.
    """

    def __init__(
        self,
        rule: Callable[[str], str],
        known: Mapping[str, str],
        fold: Callable[[str], str],
        reserved: Callable[[str], bool],
        what: str,
    ) -> None:
        self._rule = rule
        self._fold = fold
        self._reserved = reserved
        self._what = what
        self.keys: dict[str, str] = dict(known)
        self._owner = {fold(key): name for name, key in self.keys.items()}
        self.dirty = False
        self.renamed = 0

    def __call__(self, name: str) -> str:
        key = self.keys.get(name)
        if key is not None:
            return key
        key = self._rule(name)
        if self._reserved(key) or self._owner.get(self._fold(key), name) != name:
            key = _with_suffix(key, name, MAX_KEY_CHARS)
        self.keys[name] = key
        self._owner[self._fold(key)] = name
        self.dirty = True
        if key != name:
            self.renamed += 1
            if self.renamed <= 5:
                log.warning("rldk_track: wandb %s %r is recorded as %r (W&B's key rules)", self._what, name[:200], key[:200])
            elif self.renamed == 6:
                log.warning("rldk_track: wandb: more %s names adapted; the full map is logged as an artifact", self._what)
        return key

    def renames(self) -> dict[str, str]:
        return {name: key for name, key in self.keys.items() if key != name}


def _own_key(key: str) -> bool:
    return key.casefold() == GLOBAL_STEP or key.casefold().startswith(OWN_PREFIX)


class _SideState:
    """What the backend must remember across a crash and ``rldk-track sync`` that W&B cannot
    give back offline: the name maps, the alert log (by seq, so a replay adds nothing) and the
    tags. One small JSON file, rewritten atomically when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data: SideStateFile = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            data = {}
        self.metric_keys: dict[str, str] = data.get("metric_keys", {})
        self.config_keys: dict[str, str] = data.get("config_keys", {})
        self.alerts = AlertLog(data.get("alerts", {}).values())
        self.tags: dict[str, str] = data.get("tags", {})
        self.dirty = False

    def save(self, metric_keys: Mapping[str, str], config_keys: Mapping[str, str]) -> None:
        self.metric_keys, self.config_keys = dict(metric_keys), dict(config_keys)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload: SideStateFile = {
            "metric_keys": self.metric_keys, "config_keys": self.config_keys,
            "alerts": {str(entry["seq"]): entry for entry in self.alerts}, "tags": self.tags,
        }
        tmp.write_text(json.dumps(payload, ensure_ascii=False, allow_nan=True), encoding="utf-8")
        os.replace(tmp, self.path)
        self.dirty = False


class WandbBackend(Backend):
    """Records a run into Weights & Biases (online, or offline for ``wandb sync`` later), with the
    options in ``accepted_options`` (``wandb={...}``)."""

    name = "wandb"
    accepted_options = {
        "project": "W&B project (else WANDB_PROJECT, else the run's project)",
        "entity": "W&B user or team (else WANDB_ENTITY, else your default entity)",
        "mode": "online, offline (upload later with `wandb sync`) or disabled (else WANDB_MODE, else online)",
        "dir": "where W&B writes its run folders (else WANDB_DIR, else the run directory)",
        "group": "W&B run group",
        "job_type": "W&B job type",
        "tags": "extra W&B run tags",
        "init_timeout": "seconds wandb.init may take before it fails and is retried (default 90)",
        "settings": "dict of wandb.Settings fields (default console='off': W&B leaves stdout/stderr alone)",
    }
    supports = Backend.supports | {"samples"}
    requires = ("wandb",)
    extra = "wandb"
    max_batch = 1000

    def __init__(self, run: RunInfo, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(run, options)
        self._wb_run: Any = None
        self._id = wandb_id(run.run_id)
        self._done_seq = -1
        self._side: _SideState | None = None
        self._metrics: _Names | None = None
        self._config: _Names | None = None
        self._where = "wandb"

    # -- lifecycle -----------------------------------------------------------------------
    def open(self, state: Mapping[str, Any] | None, resume: Resume) -> Mapping[str, Any]:
        """Start the W&B run (or resume it, same id, when ``state`` is given); an offline run that
        never finished gets what W&B lost in the crash again (see :meth:`_redeliver_lost`)."""
        import wandb

        side = _SideState(Path(self.run.dir) / WANDB_FOLDER / side_state_name(self.run.run_id))
        self._side = side
        self._metrics = _Names(metric_key, side.metric_keys, str.casefold, _own_key, "metric")
        self._config = _Names(config_key, side.config_keys, lambda k: k, lambda k: False, "config key")
        if self._id != self.run.run_id:
            self.warn_once("id", f"rldk_track: wandb: run id {self.run.run_id!r} is W&B run id {self._id!r} (W&B's id characters)")

        mode = self._mode(wandb)
        wandb_dir = Path(self.options.get("dir") or os.environ.get("WANDB_DIR") or self.run.dir)
        wandb_dir.mkdir(parents=True, exist_ok=True)
        settings = {"console": "off", "init_timeout": float(self.options.get("init_timeout", 90.0)), **self.options.get("settings", {})}
        unfinished = self._unfinished_segments(wandb_dir) if state and mode == "offline" else None
        with _argv_redacted():  # W&B records sys.argv[1:] in the run's metadata
            run = wandb.init(
                project=self._project(),
                entity=self.options.get("entity") or None,
                dir=str(wandb_dir),
                id=self._id,
                name=self._short(self.run.name, "run name"),
                group=self._short(self.options.get("group"), "group"),
                job_type=self._short(self.options.get("job_type"), "job type"),
                tags=[self._tag(str(t)) for t in self.options.get("tags", ())],
                mode=mode,
                resume="allow" if state else None,
                reinit="create_new",
                settings=wandb.Settings(**settings),
            )
        self._wb_run = run
        self._where = f"wandb {mode or 'online'} run {run.project}/{self._id}" + (f" in {wandb_dir}" if mode == "offline" else "")
        _detach_from_wandb_globals(run)
        run.define_metric(GLOBAL_STEP)
        run.define_metric("*", step_metric=GLOBAL_STEP)
        if side.tags:
            self._set_tags({})
        run.summary.update({HEALTH_KEY: side.alerts.health()})
        if unfinished is not None:
            self._redeliver_lost(unfinished, resume)
        return {"id": self._id, "project": run.project, "entity": getattr(run, "entity", "") or "", "mode": mode or "online"}

    def write(self, records: Sequence[Record]) -> None:
        """Deliver records in order; records already delivered by this instance are skipped, so
        a retried batch adds nothing. W&B refusing a value raises :class:`RejectedError`."""
        if self._wb_run is None:
            raise RuntimeError("the W&B run is not open (it was finished or never started)")
        try:
            for record in records:
                if record.seq <= self._done_seq:
                    continue
                try:
                    self._HANDLERS[record.kind](self, record)
                except (TypeError, ValueError) as exc:
                    raise RejectedError(f"W&B refused {record.kind} seq {record.seq}: {exc}") from exc
                self._done_seq = record.seq
        finally:
            self._save_side_state()

    def close(self) -> None:
        """Finish a W&B run that never got its ``RunEnd`` (as failed: its end is unknown)."""
        run, self._wb_run = self._wb_run, None
        if run is not None:
            log.warning("rldk_track: %s closed before the run ended; W&B marks it failed", self._where)
            run.finish(exit_code=EXIT_CODES["failed"])

    def describe(self) -> str:
        return self._where

    def _wait_for_run_file(self, run: Any) -> None:
        """An offline run is finished for its readers once W&B's service has written its run file
        (it does so after ``finish`` returns): wait for that, bounded, so a reader, ``compare`` or
        ``wandb sync`` right after ``rldk_track``'s ``finish`` sees the whole run."""
        if not run.settings._offline:
            return
        if not wait_until_written(run.settings.sync_file):
            log.warning("rldk_track: %s: W&B has not written its run file %s %.0f s after finish",
                        self._where, run.settings.sync_file, WRITE_WAIT_S)

    def send_alert(self, title: str, text: str, severity: str) -> None:
        """Tell a person through W&B (``run.alert``: an e-mail or Slack message per the user's W&B
        settings; offline, an alert record in the run file that ``wandb sync`` uploads). Called by
        the notifier's thread; raises LookupError while the W&B run is not open, so it waits."""
        run = self._wb_run
        if run is None:
            raise LookupError("the W&B run is not open")
        level = {"info": "INFO", "warning": "WARN", "critical": "ERROR"}.get(severity, "WARN")
        run.alert(title=title[:63], text=text, level=level, wait_duration=1)  # W&B: titles under 64 chars

    @classmethod
    def reopen(cls, origin: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Never: an offline run file cannot be extended in place, nor a synced run's history."""
        raise CannotReopen("W&B run files cannot be extended; analyze the run's event log instead (it syncs to W&B)")

    # -- crash recovery --------------------------------------------------------------------
    def _unfinished_segments(self, wandb_dir: Path) -> WandbOfflineRun | None:
        """What earlier offline segments of this run hold, if the last one never finished."""
        try:
            stored = read_offline_run(wandb_dir / WANDB_FOLDER, self._id)
        except FileNotFoundError:
            return None
        return stored if stored.exit_code is None else None

    def _redeliver_lost(self, stored: WandbOfflineRun, resume: Resume) -> None:
        """Deliver again what W&B lost in a crash, and never what it kept.

        W&B's service writes an offline run file in 32 KiB blocks; when the training process is
        killed it drops the unwritten tail, although ``run.log`` had long returned. The last
        history row W&B did write is matched (by ``global_step`` and ``_timestamp``, the record's
        ``wall_time``) to its logged record; records after it, up to what the dispatcher had
        recorded as delivered, are delivered again into the resumed run, and records up to it are
        skipped even if the dispatcher's cursor had not recorded them yet.
        """
        delivered = resume.delivered_seq
        stored_seq = -1
        if stored.history:
            step, stamp = stored.history[-1].get(GLOBAL_STEP), stored.history[-1].get(WANDB_TIMESTAMP)
            rows = ("metrics", "alert")  # the record kinds that write a history row
            match = next((r.seq for r in resume.records_after(-1)
                          if r.kind in rows and r.step == step and r.wall_time == stamp), None)
            if match is None:
                log.warning("rldk_track: %s: cannot tell what W&B kept before the crash; nothing is resent", self._where)
                return
            stored_seq = match
        lost = 0
        for record in resume.records_after(stored_seq):
            if record.seq > delivered:
                break
            if record.kind != RunEnd.kind:
                self._HANDLERS[record.kind](self, record)
                lost += 1
        if lost:
            log.warning("rldk_track: %s: W&B lost %d records in the crash; they were delivered again", self._where, lost)
        self._done_seq = max(stored_seq, delivered)
        self._save_side_state()

    # -- options ---------------------------------------------------------------------------
    def _mode(self, wandb: Any) -> str | None:
        """``mode`` option, else ``WANDB_MODE``; online without credentials falls back to
        offline (W&B would otherwise prompt on a terminal or fail on every retry)."""
        mode = self.options.get("mode") or os.environ.get("WANDB_MODE") or None
        if mode in (None, "online", "run") and not wandb.login(prompt=False, verify=False):
            self.warn_once(
                "offline",
                "rldk_track: wandb: no W&B credentials (WANDB_API_KEY or `wandb login`); recording offline -- "
                "upload later with `wandb sync`",
            )
            return "offline"
        return mode

    def _project(self) -> str:
        wanted = self.options.get("project") or os.environ.get("WANDB_PROJECT") or self.run.project
        project = project_name(wanted)
        if project != wanted:
            self.warn_once("project", f"rldk_track: wandb: project {wanted!r} is recorded as {project!r}")
        return project

    def _short(self, text: str | None, what: str) -> str | None:
        if not text:
            return None
        if len(text) > MAX_NAME_CHARS:
            self.warn_once(what, f"rldk_track: wandb: {what} cut to W&B's {MAX_NAME_CHARS} characters: {text[:60]!r}...")
            return text[:MAX_NAME_CHARS]
        return text

    def _tag(self, text: str) -> str:
        tag = tag_text(text, "")
        if tag != text:
            self.warn_once("tag", f"rldk_track: wandb: tag {text[:80]!r} cut to W&B's {MAX_TAG_CHARS} characters")
        return tag

    # -- records ---------------------------------------------------------------------------
    def _write_metrics(self, record: Metrics) -> None:
        names = self._metrics
        row: dict[str, Any] = {names(name): value for name, value in record.values.items()}
        if row:
            self._log_row(row, record.step, record.wall_time)

    def _log_row(self, row: dict[str, Any], step: int, wall_time: float) -> None:
        row[GLOBAL_STEP] = step
        row[WANDB_TIMESTAMP] = wall_time
        self._wb_run.log(row)

    def _write_params(self, record: Params) -> None:
        """Params logged again extend the config: a nested value merges into what W&B holds
        (``config.update`` alone would replace the whole top-level key)."""
        config = self._wb_run.config
        clean = {}
        for key, value in record.values.items():
            name, value = self._config(str(key)), self._value(value, "config")
            current = config.get(name)
            if isinstance(value, Mapping) and isinstance(current, Mapping):
                value = deep_merge(deep_merge({}, current), value)
            clean[name] = value
        config.update(clean, allow_val_change=True)

    def _write_summary(self, record: Summary) -> None:
        self._wb_run.summary.update({self._metrics(str(k)): self._value(v, "summary") for k, v in record.values.items()})

    def _write_tags(self, record: Tags) -> None:
        self._set_tags(record.values)

    def _set_tags(self, values: Mapping[str, str]) -> None:
        """Add/replace ``key=value`` tags; a value too long for a tag keeps its full text in the
        summary under ``rldk/tag/<key>``."""
        side = self._side
        side.tags.update({str(k): str(v) for k, v in values.items()})
        side.dirty = side.dirty or bool(values)
        ours = {tag_text(k, v): k for k, v in side.tags.items()}
        keep = [t for t in self._wb_run.tags or () if t not in ours and not any(t.startswith(f"{k}=") for k in side.tags)]
        self._wb_run.tags = tuple(dict.fromkeys([*keep, *ours]))
        long = {metric_key(f"{TAG_KEY_PREFIX}{k}"): v for k, v in values.items() if tag_text(k, v).endswith("…")}
        if long:
            self.warn_once("longtag", f"rldk_track: wandb: tags longer than {MAX_TAG_CHARS} characters are cut; full values are in the summary under {TAG_KEY_PREFIX}")
            self._wb_run.summary.update(long)

    def _write_alert(self, record: Alert) -> None:
        """The alert policy (:mod:`rldk_track.alerts`) in W&B: summary ``rldk/alert/<rule>`` = the
        rule's state, summary ``rldk/health``, a history row ``alerts/count``; the log is kept in
        the side state and logged as the ``alerts`` table at the end. Its evidence rows go into the
        same row as a table under ``alerts/<rule>/evidence``."""
        alerts = self._side.alerts
        alerts.add(record)
        self._side.dirty = True
        summary = self._wb_run.summary
        summary[metric_key(f"{ALERT_KEY_PREFIX}{record.rule}")] = rule_state(record)
        summary[HEALTH_KEY] = alerts.health()
        count = alerts.count_point(record)
        row: dict[str, Any] = {} if count is None else {ALERT_COUNT_METRIC: count}
        if record.evidence is not None:
            import wandb

            evidence = record.evidence
            row[self._metrics(evidence_key(record.rule))] = wandb.Table(
                columns=list(evidence.columns), data=[list(r) for r in evidence.rows], allow_mixed_types=True)
        if row:
            self._log_row(row, record.step, record.wall_time)

    def _write_checkpoint(self, record: CheckpointHealth) -> None:
        """Summary ``rldk/checkpoint`` (the latest verdict) and an artifact with the record; no
        history row, so the analyzer's ``checkpoint/*`` metrics are the only points."""
        import wandb

        report = {
            "step": record.step, "path": record.path, "score": record.score, "issues": list(record.issues),
            "recommendations": list(record.recommendations),
        }
        self._wb_run.summary[CHECKPOINT_KEY] = self._value(report, "summary")
        artifact = wandb.Artifact(artifact_name(f"run-{self._id}-checkpoint-health"), type=CHECKPOINT_ARTIFACT_TYPE,
                                  metadata={"step": record.step, "score": _jsonable(record.score)})
        with artifact.new_file(CHECKPOINT_FILE, mode="w", encoding="utf-8") as f:
            json.dump({**report, "stats": record.stats}, f, default=str, allow_nan=True)
        self._wb_run.log_artifact(artifact, aliases=[f"step-{record.step}"])

    def _write_samples(self, record: Samples) -> None:
        import wandb

        table = wandb.Table(columns=list(record.columns), data=[list(row) for row in record.rows], allow_mixed_types=True)
        self._log_row({self._metrics(f"{SAMPLES_PREFIX}{record.name}"): table}, record.step, record.wall_time)

    def _write_artifact(self, record: Artifact) -> None:
        import wandb

        path = Path(record.path or "")
        if not record.path or not path.exists():
            raise RejectedError(f"artifact {record.name!r}: its staged copy {record.path!r} is gone")
        artifact = wandb.Artifact(artifact_name(f"run-{self._id}-{record.name}"), type=ARTIFACT_TYPE,
                                  metadata={"rldk_name": record.name, "size": record.size})
        if path.is_dir():
            artifact.add_dir(str(path), name=record.name)
        else:
            artifact.add_file(str(path), name=record.name)
        self._wb_run.log_artifact(artifact)

    def _write_end(self, record: RunEnd) -> None:
        import wandb

        run, side = self._wb_run, self._side
        if side.alerts:
            rows = [alert_cells(entry) for entry in side.alerts]
            artifact = wandb.Artifact(artifact_name(f"run-{self._id}-rldk-alerts"), type=ALERTS_ARTIFACT_TYPE)
            artifact.add(wandb.Table(columns=list(ALERT_FIELDS), data=rows, allow_mixed_types=True), ALERTS_TABLE)
            run.log_artifact(artifact)
        renames: KeyMapFile = {"metrics": self._metrics.renames(), "config": self._config.renames()}
        if any(renames.values()):
            artifact = wandb.Artifact(artifact_name(f"run-{self._id}-rldk-key-map"), type=ARTIFACT_TYPE)
            with artifact.new_file(KEY_MAP_FILE, mode="w", encoding="utf-8") as f:
                json.dump(renames, f, ensure_ascii=False, indent=1)
            run.log_artifact(artifact)
        run.summary[STATUS_KEY] = record.status
        run.finish(exit_code=EXIT_CODES.get(record.status, EXIT_CODES["failed"]))
        self._wb_run = None
        self._wait_for_run_file(run)

    _HANDLERS: ClassVar[dict[str, Callable[["WandbBackend", Any], None]]] = {
        "metrics": _write_metrics,
        "params": _write_params,
        "summary": _write_summary,
        "tags": _write_tags,
        "alert": _write_alert,
        "checkpoint_health": _write_checkpoint,
        "artifact": _write_artifact,
        "samples": _write_samples,
        "run_end": _write_end,
    }

    # -- values ----------------------------------------------------------------------------
    def _value(self, value: Any, where: str) -> Any:
        """A config/summary value W&B stores faithfully: NaN becomes the string ``"NaN"`` (W&B
        would store null), strings are capped at :data:`MAX_VALUE_CHARS`."""
        if isinstance(value, float) and math.isnan(value):
            self.warn_once(f"nan-{where}", f"rldk_track: wandb: NaN in the {where} is stored as the string 'NaN' (W&B stores null)")
            return "NaN"
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            self.warn_once(
                f"long-{where}",
                f"rldk_track: wandb: a {where} value of {len(value)} characters is cut to {MAX_VALUE_CHARS}; "
                "the full value is in the event log",
            )
            return value[:MAX_VALUE_CHARS] + f"…[cut {len(value) - MAX_VALUE_CHARS} characters]"
        if isinstance(value, Mapping):
            return {str(k): self._value(v, where) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._value(v, where) for v in value]
        return value

    def _save_side_state(self) -> None:
        side, names = self._side, (self._metrics, self._config)
        if side is None or not (side.dirty or any(n.dirty for n in names)):
            return
        side.save(self._metrics.keys, self._config.keys)
        for n in names:
            n.dirty = False



@contextlib.contextmanager
def _argv_redacted() -> Iterator[None]:
    """``sys.argv`` with its credentials redacted (``--hf_token hf_...``) while W&B reads it."""
    original = sys.argv
    redacted = redact(list(original))
    if redacted != original:
        sys.argv = redacted
    try:
        yield
    finally:
        sys.argv = original


def _detach_from_wandb_globals(run: Any) -> None:
    """Keep the user's own ``wandb`` calls away from this run.

    ``reinit="create_new"`` leaves ``wandb.run`` alone, but W&B also remembers the most recent
    active run: a later plain ``wandb.init()`` (e.g. Hugging Face's ``report_to="wandb"``) would
    return this run, in a notebook finish it, and ``Artifact.save()`` would log into it. Taking
    it off W&B's active list (what ``run.finish`` does anyway) prevents that; this run is
    finished by its own ``RunEnd`` or the exit guard.
    """
    try:
        from wandb.sdk import wandb_setup

        wandb_setup.singleton().remove_active_run(run)
    except (ImportError, AttributeError) as exc:  # W&B moved it: recording is unaffected
        log.debug("rldk_track: wandb: could not detach the run from W&B's active runs: %s", exc)


def _jsonable(value: float) -> Any:
    return value if math.isfinite(value) else str(value)


