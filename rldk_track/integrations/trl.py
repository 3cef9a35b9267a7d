"""TRL / transformers integration: one ``TrainerCallback`` that records a run in every tracker.

```python
from rldk_track.integrations.trl import RLDKCallback
trainer = GRPOTrainer(..., callbacks=[RLDKCallback(backend=["mlflow", "tensorboard"])])
```

Works with every TRL trainer (GRPO, RLOO, DPO, SFT, Reward, KTO, OnlineDPO) and any
``transformers.Trainer``: the callback only uses the events every Trainer sends. What each
event becomes:

- ``on_train_begin``: the run starts; its config is the TrainingArguments, the model config, the
  trainer class, library versions, the git commit and the seeds; its tags ``rldk.framework``,
  ``rldk.framework_version`` and ``rldk.trainer`` (:mod:`rldk_track.integrations.common`).
- ``on_log``: the logged values at ``state.global_step``, each once, under its canonical name
  where it has one (``reward`` -> ``reward/mean``, ``eval_loss`` -> ``eval/loss/total``; see
  ``docs/metrics.md``), else its TRL name; the renames are the artifact ``rldk/metric_names.json``
  (``metric_names="both"`` records both names, ``"original"`` the TRL names). The end-of-training line (``train_runtime``, ``train_loss``...) is the
  run's summary, not a step series. With them, TRL's own profiling timings (generation, each
  reward function...: :mod:`rldk_track.integrations.trl_profiling`) as ``perf/*`` seconds a step.
- ``on_evaluate``: evaluation metrics the trainer did not already log.
- ``on_save``: the health of ``<output_dir>/checkpoint-<global_step>``, analysed off the
  training thread.
- ``on_train_end``: the run finishes with status ``success`` (``killed`` when ``stop_on`` stopped
  it). When training raises, transformers sends no ``on_train_end``: an uncaught exception ends
  the run as ``failed`` at interpreter exit, and the next ``trainer.train()`` with this callback
  ends a run left open as ``failed`` before starting a new one (or call ``finish("failed")``).

Only the process with ``state.is_world_process_zero`` talks to trackers; on other ranks every
event is a no-op.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

import rldk_track
from rldk_track.integrations.common import STOPPED_BY_TAG, framework_tags, provenance, system_sampler
from rldk_track.integrations.trl_profiling import ProfilingTimings
from rldk_track.integrations.trl_samples import CompletionsSource, find_trainer
from rldk_track.keymaps import NAMES_ARTIFACT, MetricNames, canonicalize, check_metric_names, names_artifact, renames
from rldk_track.records import SEVERITIES, Alert, Record
from rldk_track.run import BackendSpec, Run, resolve_backends
from rldk_track.samples import SampleLimits

log = logging.getLogger("rldk_track")

FRAMEWORK = "trl"
#: The sample set name of a GRPO/RLOO generation batch (``samples=True``).
COMPLETIONS = "completions"

#: Keys that only the end-of-training line carries (transformers' ``_finalize_training``); a
#: line with any of them is the run's summary. (Per-step lines may carry ``train_runtime`` and
#: ``train_tokens_per_second`` when tokens are counted; those stay step series.)
SUMMARY_MARKERS = frozenset({"train_loss", "total_flos", "train_samples_per_second", "train_steps_per_second"})

#: TRL's own packages whose versions go into the run's config (next to the common training
#: libraries of :data:`rldk_track.integrations.common.VERSIONED_PACKAGES`).
FRAMEWORK_PACKAGES = ("trl", "vllm")

#: How long ``on_train_end`` waits for checkpoint analyses still running.
CHECKPOINT_DRAIN_TIMEOUT_S = 120.0


class RLDKCallback(TrainerCallback, ExportableState):
    """Record a transformers/TRL training run: metrics, config, analyzer alerts, checkpoint health
    and system metrics, into the trackers named by ``backend`` (any spec ``rldk_track.init``
    takes).

    ``analyzers``: ``"default"``, a list of analyzer names/objects, or None.
    ``checkpoint_health``: analyse each saved checkpoint (off the training thread).
    ``system_metrics``: sample GPU/CPU/memory every 10 s (True), every N seconds (a number), or not.
    ``stop_on``: ``"critical"`` (or ``"warning"``) stops training at the next step after an alert
    of that severity or worse is raised, and records why (tag ``rldk.stopped_by`` and an alert).
    ``samples``: record each logging step's generation batch of a GRPO/RLOO trainer (prompts,
    completions, rewards per function, advantages) as the sample set ``completions``
    (:mod:`rldk_track.integrations.trl_samples`), whatever ``report_to`` and ``log_completions`` say:
    True (the default :class:`~rldk_track.samples.SampleLimits`), or a ``SampleLimits`` (rows a
    set, characters a cell, every N steps), which becomes the run's ``init(samples=...)`` and so
    also bounds the sets of watched reward functions.
    ``profiling``: record TRL's profiling timings (``trl.extras.profiling``, which TRL sends only
    to W&B/MLflow/trackio itself) as ``perf/<stage>_s`` (:mod:`rldk_track.integrations.trl_profiling`).
    Reward functions wrapped by a :class:`~rldk_track.integrations.reward_watch.RewardWatch`
    among the trainer's ``reward_funcs`` record their samples into this run
    (``RewardWatch(samples=True)``).
    ``metric_names``: ``"canonical"`` (each metric once, under its canonical name where it has
    one), ``"both"`` (TRL name and canonical name) or ``"original"`` (TRL names only).
    Other keyword arguments go to :func:`rldk_track.init` (``dir=``, ``config=``, ``tags=``,
    ``mlflow={...}``, ``trackio={...}``, ``notify=["webhook", "wandb"]``...).

    Resuming is the same run: the run id is saved in each checkpoint's ``trainer_state.json``
    (``stateful_callbacks``, as a transformers ``ExportableState``), and
    ``trainer.train(resume_from_checkpoint=...)`` with a fresh callback continues that run in
    every tracker (``run_id=`` given here wins). This needs no
    ``restore_callback_states_from_checkpoint``; with it, transformers rebuilds the callback
    from its JSON-safe arguments.
    """

    def __init__(
        self,
        backend: BackendSpec = None,
        project: str | None = None,
        run_name: str | None = None,
        analyzers: str | Sequence[Any] | None = "default",
        checkpoint_health: bool = True,
        system_metrics: bool | float = True,
        stop_on: str | None = None,
        samples: bool | SampleLimits = False,
        profiling: bool = True,
        metric_names: MetricNames = "canonical",
        **init_kwargs: Any,
    ) -> None:
        if stop_on is not None and stop_on not in SEVERITIES[1:]:
            raise ValueError(f"stop_on must be None, 'warning' or 'critical', not {stop_on!r}")
        self.metric_names = check_metric_names(metric_names)
        resolve_backends(backend)
        self.backend = backend
        self.project = project
        self.run_name = run_name
        self.analyzers = analyzers
        self.checkpoint_health = checkpoint_health
        self.system_metrics = system_metrics
        self.stop_on = stop_on
        self.samples = callback_samples(samples)
        self._completions = CompletionsSource() if self.samples else None
        self.profiling = profiling
        self._timings: ProfilingTimings | None = None
        self._watches: list[Any] = []
        self._user_observers = tuple(init_kwargs.pop("observers", ()))
        self._user_tags = dict(init_kwargs.pop("tags", None) or {})
        self._user_config = init_kwargs.pop("config", None)
        self.init_kwargs = init_kwargs
        self._run: Run | None = None
        self._stop_watch: _StopWatch | None = None
        self._stop_recorded = False
        self._checkpoints: Any = None
        self._sampler: Any = None
        self._eval_logged: tuple[int, frozenset[str]] = (-1, frozenset())
        self._renamed: dict[str, str] = {}
        self._arguments = {"backend": backend, "project": project, "run_name": run_name, "analyzers": analyzers,
                           "checkpoint_health": checkpoint_health, "system_metrics": system_metrics,
                           "stop_on": stop_on, "samples": samples_argument(self.samples), "profiling": profiling, "metric_names": metric_names, "tags": self._user_tags, "config": self._user_config, **init_kwargs}
        #: The run a checkpoint being resumed from belongs to (set by transformers when it
        #: restores callback states; otherwise read from the resumed ``TrainerState``).
        self.resume_run_id: str | None = None

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of this callback (``ExportableState``): the run id, so that
        resuming from the checkpoint continues the run, and the arguments that are JSON."""
        run = self._run
        return {"args": _json_safe(self._arguments),
                "attributes": {"resume_run_id": run.id if run is not None else self.resume_run_id}}

    @property
    def run(self) -> Run | None:
        """The run being recorded (None before training starts and on non-zero ranks)."""
        return self._run

    # -- events ----------------------------------------------------------------------------
    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if self._run is not None and self._run.active:
            log.warning("rldk_track: run %s never saw on_train_end (training raised); it is recorded as failed", self._run.id)
            self.finish("failed")
        self._start(args, state, kwargs.get("model"), kwargs.get("processing_class"))
        if self._run is not None and self._run.active:
            self._attach(find_trainer(), state.global_step)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        run = self._run
        if run is None or not logs:
            return
        if SUMMARY_MARKERS.intersection(logs):
            run.log_summary({k: v for k, v in logs.items() if v is not None})
            return
        values = dict(logs)  # a None (no value) is left out by run.log, with a note
        eval_keys = frozenset(k for k in values if k.startswith("eval_"))
        if eval_keys:
            self._eval_logged = (state.global_step, eval_keys)
        if self._timings is not None:
            for key, seconds in self._timings.take(state.global_step).items():
                values.setdefault(key, seconds)  # a RewardWatch's own perf/reward/<fn>_s wins
        if self._completions is not None:  # before the metrics: an alert they raise shows this step's rows
            self._log_completions(run, state.global_step)
        self._log(run, values, state.global_step)
        self._stop_if_alerted(state, control)

    def _log_completions(self, run: Run, step: int) -> None:
        if not run.sample_limits.wants(step):  # SampleLimits.every: no copy on the steps it skips
            return
        trainer = find_trainer()
        columns = self._completions.columns(trainer) if trainer is not None else None
        if columns:
            run.log_samples(columns, step=step, name=COMPLETIONS)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, metrics: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Log evaluation metrics that did not already come through ``on_log`` (a Trainer logs
        them itself; a custom evaluation loop may not)."""
        run = self._run
        if run is None or not metrics:
            return
        step, already = self._eval_logged
        fresh = {k: v for k, v in metrics.items() if not (step == state.global_step and k in already)}
        if fresh:
            self._log(run, fresh, state.global_step)

    def _log(self, run: Run, values: Mapping[str, Any], step: int) -> None:
        """Log ``values`` under the names :attr:`metric_names` asks for; when a key is renamed for
        the first time, the whole rename table is (re)written as ``rldk/metric_names.json``."""
        run.log(canonicalize(values, FRAMEWORK, self.metric_names), step=step)
        if self.metric_names == "original":
            return
        logged = (k for k, v in values.items() if v is not None)
        new = {k: v for k, v in renames(logged, FRAMEWORK).items() if k not in self._renamed}
        if new:
            self._renamed.update(new)
            run.log_artifact(names_artifact(FRAMEWORK, self.metric_names, self._renamed), name=NAMES_ARTIFACT)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self._run is not None:
            self._stop_if_alerted(state, control)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self._run is None or self._checkpoints is None:
            return
        path = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if path.is_dir():
            self._checkpoints.submit(path, state.global_step)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self._run is not None:
            self.finish("killed" if self._stop_recorded else "success")

    # -- lifecycle -------------------------------------------------------------------------
    def finish(self, status: str = "success") -> None:
        """End the run now: checkpoint analyses still running get a bounded wait, the system
        sampler stops, and the trackers receive ``status``. Safe to call more than once."""
        run = self._run
        if run is None or not run.active:
            return
        self._detach(run)
        if self._checkpoints is not None:
            self._checkpoints.close(timeout=CHECKPOINT_DRAIN_TIMEOUT_S)
            self._checkpoints = None
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        run.finish(status)

    def _attach(self, trainer: Any, step: int) -> None:
        """Listen to ``trainer``'s profiling, and give its watched reward functions this run."""
        if trainer is None:
            return
        if self.profiling:
            timings = ProfilingTimings(trainer, step)
            self._timings = timings if timings.start() else None
        watches = {id(w): w for f in getattr(trainer, "reward_funcs", None) or ()
                   if (w := getattr(f, "__rldk_watch__", None)) is not None}
        self._watches = list(watches.values())
        for watch in self._watches:
            watch.attach(self._run, trainer)

    def _detach(self, run: Run) -> None:
        if self._timings is not None:
            self._timings.stop()
            self._timings = None
        for watch in self._watches:
            watch.detach(run)
        self._watches = []

    def _start(self, args: TrainingArguments, state: TrainerState, model: Any, processing_class: Any) -> None:
        self._stop_watch = _StopWatch(self.stop_on) if self.stop_on else None
        self._stop_recorded = False
        self._renamed = {}
        self._sampler = system_sampler(self.system_metrics)
        observers = [*self._user_observers, *(o for o in (self._stop_watch, self._sampler) if o is not None)]
        kwargs = dict(self.init_kwargs)
        resumed = checkpoint_run_id(state, type(self).__name__) or self.resume_run_id
        if resumed and not kwargs.get("run_id") and state.global_step > 0:
            kwargs["run_id"] = resumed
            log.info("rldk_track: resuming from step %d continues run %s", state.global_step, resumed)
        if self.project is not None:
            kwargs["project"] = self.project
        if isinstance(self.samples, SampleLimits):
            kwargs["samples"] = self.samples
        config = run_config(args, state, model, processing_class)
        if self._user_config is not None:
            config["user"] = self._user_config
        self._run = rldk_track.init(
            self.backend,
            run_name=self.run_name or args.run_name or None,
            config=config,
            tags={**framework_tags(FRAMEWORK, trainer_class_name(args)), **self._user_tags},
            analyzers=self.analyzers,
            observers=observers,
            **kwargs,
        )
        if not self._run.active:  # a non-logging rank per the launcher's environment
            self._sampler = None
            return
        if self.checkpoint_health:
            from rldk_track.producers.checkpoint_monitor import CheckpointMonitor

            self._checkpoints = CheckpointMonitor(self._run)
        if self._sampler is not None:
            self._sampler.start(self._run)

    def _stop_if_alerted(self, state: TrainerState, control: TrainerControl) -> None:
        watch = self._stop_watch
        if watch is None or watch.alert is None:
            return
        control.should_training_stop = True
        if self._stop_recorded:
            return
        self._stop_recorded = True
        alert = watch.alert
        reason = f"{alert.rule} ({alert.severity}) at step {alert.step}: {alert.message}"
        log.warning("rldk_track: stopping training at step %d (stop_on=%r): %s", state.global_step, self.stop_on, reason)
        run = self._run
        assert run is not None
        run.set_tags({STOPPED_BY_TAG: reason})
        run.alert(
            "training_stopped",
            f"training stopped at step {state.global_step} by stop_on={self.stop_on!r} after {reason}",
            severity="info",
            step=state.global_step,
            metric=alert.metric,
            value=alert.value,
            threshold=alert.threshold,
        )


class _StopWatch:
    """An observer (on the log thread) that remembers the first raised alert at or above a
    severity; the callback reads it on the training thread and stops the trainer."""

    def __init__(self, severity: str) -> None:
        self._level = SEVERITIES.index(severity)
        self.alert: Alert | None = None

    def observe(self, records: Iterable[Record]) -> list[Record]:
        if self.alert is None:
            for record in records:
                if (
                    isinstance(record, Alert)
                    and record.state == "raised"
                    and record.rule != "training_stopped"
                    and SEVERITIES.index(record.severity) >= self._level
                ):
                    self.alert = record
                    break
        return []


# -- the run's config ----------------------------------------------------------------------
def checkpoint_run_id(state: TrainerState, callback_name: str) -> str | None:
    """The run id a resumed ``TrainerState`` carries for ``callback_name`` (the last saved, when
    transformers kept a list), or None."""
    saved = (state.stateful_callbacks or {}).get(callback_name)
    if isinstance(saved, list):
        saved = saved[-1] if saved else None
    if not isinstance(saved, Mapping):
        return None
    run_id = (saved.get("attributes") or {}).get("resume_run_id")
    return str(run_id) if run_id else None


def callback_samples(samples: Any) -> bool | SampleLimits:
    """``RLDKCallback``'s ``samples`` checked: a bool, a :class:`~rldk_track.samples.SampleLimits`,
    or the mapping of its fields that a checkpoint keeps (:func:`samples_argument`); anything else
    is a TypeError that says what is taken."""
    if isinstance(samples, Mapping):
        try:
            return SampleLimits(**samples)
        except TypeError as exc:
            raise TypeError(f"RLDKCallback(samples=...) as a mapping takes the fields of SampleLimits "
                            f"(max_rows, max_cell_chars, every): {exc}") from None
    if type(samples) is bool or isinstance(samples, SampleLimits):
        return samples
    raise TypeError("RLDKCallback(samples=...) takes True, False or a rldk_track.samples.SampleLimits "
                    f"(e.g. SampleLimits(max_rows=16, every=10)), not {samples!r}")


def samples_argument(samples: bool | SampleLimits) -> bool | dict[str, int]:
    """``samples`` as JSON for the checkpoint's callback state (a SampleLimits as its fields)."""
    return dataclasses.asdict(samples) if isinstance(samples, SampleLimits) else samples


def _json_safe(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``arguments`` that survive ``json.dumps`` (trainer_state.json is JSON)."""
    out = {}
    for key, value in arguments.items():
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[key] = value
    return out


def trainer_class_name(args: TrainingArguments) -> str:
    """The trainer a config class belongs to: ``GRPOConfig`` -> ``GRPOTrainer``,
    ``TrainingArguments`` -> ``Trainer``."""
    name = type(args).__name__
    if name == "TrainingArguments":
        return "Trainer"
    if name.endswith("Config"):
        return name[: -len("Config")] + "Trainer"
    return name


def run_config(args: TrainingArguments, state: TrainerState, model: Any, processing_class: Any) -> dict[str, Any]:
    """Everything that defines the run: the trainer's arguments, the model, the seeds, the code
    (git commit) and the library versions."""
    config: dict[str, Any] = {
        "trainer": {"class": trainer_class_name(args), "args_class": f"{type(args).__module__}.{type(args).__name__}"},
        "args": args.to_dict(),
        "seeds": {"seed": args.seed, "data_seed": args.data_seed, "full_determinism": args.full_determinism},
        "state": {"max_steps": state.max_steps, "num_train_epochs": state.num_train_epochs,
                  "train_batch_size": state.train_batch_size},
    }
    if model is not None:
        try:
            config["model"] = model_description(model)
        except Exception as exc:  # an unusual model must not stop training from starting
            log.warning("rldk_track: the model's description is not recorded: %s: %s", type(exc).__name__, exc)
    if processing_class is not None:
        config["processing_class"] = type(processing_class).__name__
    config.update(provenance(FRAMEWORK_PACKAGES))
    return config


def model_description(model: Any) -> dict[str, Any]:
    """The model's class, parameter counts and config (``config.to_dict()``)."""
    out: dict[str, Any] = {"class": type(model).__name__}
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        total = trainable = 0
        for p in parameters():
            count = getattr(p, "ds_numel", None) or p.numel()  # DeepSpeed ZeRO-3 partitions parameters
            total += count
            trainable += count if p.requires_grad else 0
        out["num_parameters"] = total
        out["num_trainable_parameters"] = trainable
    config = getattr(model, "config", None)
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        out["config"] = to_dict()
    return out
