"""OpenRLHF integration: every metric OpenRLHF logs, in your tracker, without editing OpenRLHF.

OpenRLHF (0.11.x) has no callback system: all of its logging goes through one method per trainer,
``save_logs_and_checkpoints``. :func:`install` wraps that method of the PPO trainer
(``BasePPOTrainer``, which the Ray single controller ``PPOTrainer`` and the async
``TrainingActor`` inherit) and of the SFT, DPO and reward-model trainers. Each call then logs its
``logs_dict`` at ``global_step`` (canonical names next to OpenRLHF's own, see
:mod:`rldk_track.keymaps`), the KL coefficient in effect, per-process timing and peak memory, and
queues each new HF-format checkpoint for health analysis off the training thread — and then calls
OpenRLHF's method unchanged. PPO's ``generated_samples`` (one decoded sequence and its reward a
step) become the sample set ``completions`` (a :class:`~rldk_track.records.Samples` record with
columns ``text`` and ``reward``, which every tracker shows), not a metric. Evaluation results are logged too (PPO: through
``save_best_checkpoint``; SFT/DPO/RM: read from ``evaluate``'s own wandb/TensorBoard call).

Where the patch must live:

- SFT/DPO/RM run in the training processes that ``deepspeed``/``torchrun`` start: install in each
  (``rldk-track openrlhf -- deepspeed ...`` does it for you). Only global rank 0 records, unless
  ``per_rank=True``.
- PPO logs inside a Ray actor, in another process (on another node, maybe). A patch applied in the
  driver does not reach it; the Ray ``worker_process_setup_hook`` :func:`setup_worker` does: it
  installs the patch in every worker of the job, lazily (nothing is imported until OpenRLHF's
  trainer module is). ``rldk-track openrlhf -- python -m openrlhf.cli.train_ppo_ray ...`` starts
  Ray with it; :func:`ray_runtime_env` gives the ``runtime_env`` for your own ``ray.init`` or
  ``ray job submit --runtime-env-json``.

The run is created on the first logging call and finished when the process exits (Ray ends the
trainer actor gracefully when the driver's handle goes away), or at once with status ``failed``
when an exception escapes OpenRLHF's training step.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import inspect
import json
import logging
import numbers
import os
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from rldk_track import lifecycle
from rldk_track.integrations import post_import
from rldk_track.integrations.common import (
    GIT_COMMIT_ENV,
    TRAINER_TAG,
    framework_tags,
    git_commit,
    provenance,
    system_sampler,
)
from rldk_track.keymaps import canonicalize
from rldk_track.layout import RunLayout, resolve_run_dir

if TYPE_CHECKING:
    from rldk_track.run import Run

log = logging.getLogger("rldk_track")

#: Environment variable that carries :class:`Settings` (JSON) to Ray workers and launched ranks.
SETTINGS_ENV = "RLDK_OPENRLHF"
#: What to put in ``runtime_env["worker_process_setup_hook"]``.
SETUP_HOOK = "rldk_track.integrations.openrlhf.setup_worker"
#: Launcher -> trainer actor: how the driver ended, when the actor's run cannot see it itself.
LAUNCHER_STATUS_SUFFIX = ".launcher-status"

FRAMEWORK = "openrlhf"
#: OpenRLHF's own packages whose versions go into the run's config (next to the common training
#: libraries of :data:`rldk_track.integrations.common.VERSIONED_PACKAGES`).
FRAMEWORK_PACKAGES = ("openrlhf", "ray", "vllm", "flash_attn")
SAMPLES_KEY = "generated_samples"
#: The sample set PPO's ``generated_samples`` are recorded as (TRL's generations have the same name).
SAMPLES_NAME = "completions"
GB = 1e9  # as rldk_track.system reports memory


@dataclass(frozen=True)
class Settings:
    """What :func:`install` was asked for; JSON-able so that it can travel to other processes.

    ``init`` holds keyword arguments for :func:`rldk_track.init` (``project``, ``run_name``,
    ``dir``, ``tags``, ``per_rank``, ``analyzers``, ``mlflow``/``wandb``/``tensorboard``, ...).
    """

    backend: str | list[str] | None = None
    init: Mapping[str, Any] = field(default_factory=dict)
    checkpoint_health: bool = True
    samples: bool = True
    system_metrics: bool | float = False  # True: every 10 s; a number: seconds between samples

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            log.warning("rldk_track: ignoring unknown OpenRLHF settings %s", ", ".join(sorted(unknown)))
        return cls(**{k: v for k, v in data.items() if k in names})


# -- the per-process session ---------------------------------------------------------------
class _Session:
    """The run of this process and what the wrappers accumulate for it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run: Run | None = None
        self._lock = threading.Lock()
        self._monitor: Any = None
        self._sampler: Any = None
        self._kl_coef: float | None = None
        self._last_log_time: float | None = None
        self.closed = False

    # -- run lifecycle -----------------------------------------------------------------
    def ensure_run(self, trainer: Any, args: Any) -> "Run | None":
        if self.run is not None or self.closed:
            return self.run
        with self._lock:
            if self.run is None and not self.closed:
                try:
                    self.run = self._start_run(trainer, args)
                except BaseException:
                    # Tried once: retrying at every logging call would repeat the failing
                    # backend lookup and start on the training thread for the rest of training.
                    self.closed = True
                    raise
                # Checkpoint analyses first, then the run's end (a plain atexit hook
                # would run after it: every backend start moves the runs' end to the front).
                lifecycle.before_runs_finish(self._close_at_exit)
        return self.run

    def _start_run(self, trainer: Any, args: Any) -> "Run":
        import rldk_track

        kwargs = dict(self.settings.init)
        wandb_name = _get(args, "logger.wandb.run_name")
        if not kwargs.get("run_name") and isinstance(wandb_name, str) and wandb_name:
            kwargs["run_name"] = wandb_name
        kwargs.setdefault("analyzers", "default")
        tags = {**framework_tags(FRAMEWORK, _class_name(trainer)), **(kwargs.pop("tags", None) or {})}
        observers = list(kwargs.pop("observers", ()))
        if self.settings.system_metrics and _samples_this_node(bool(kwargs.get("per_rank"))):
            self._sampler = system_sampler(self.settings.system_metrics)
            observers.append(self._sampler)
        # OpenRLHF's nested SimpleNamespace args, with the versions and git commit beside them;
        # the Run redacts --logger.wandb.key (a bare "key" holding a key-like value).
        run = rldk_track.init(self.settings.backend, config=run_config(args), tags=tags, observers=observers, **kwargs)
        if self._sampler is not None:
            self._sampler.start(run)
        if run.active:
            log.info("rldk_track: recording OpenRLHF %s as run %s (%s) in %s",
                     tags[TRAINER_TAG], run.id, run.name, ", ".join(run.backends) or "the event log only")
        return run

    def close(self, status: str | None = None, timeout: float | None = None) -> None:
        """Wait (bounded) for checkpoint health, and finish the run when
        ``status`` is given or the launcher left one; otherwise the Run's own exit hook finishes it."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        lifecycle.forget_before_runs_finish(self._close_at_exit)
        run = self.run
        if run is None or not run.active:
            return
        timeout = lifecycle.exit_timeout() if timeout is None else timeout
        if self._monitor is not None:
            self._monitor.close(timeout=timeout)
        if self._sampler is not None:
            self._sampler.stop(timeout=min(timeout, 5.0))
        status = status or _launcher_status(run)
        if status:
            run.finish(status, timeout=timeout)

    def _close_at_exit(self, timeout: float) -> None:
        self.close(timeout=timeout)

    def fail(self, exc: BaseException) -> None:
        """An exception escaped OpenRLHF's training code: the run ends now, as failed (killed on
        Ctrl-C), because the process may be torn down before any exit hook runs."""
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            return
        if self.run is None or not self.run.active:
            return
        status = lifecycle.status_for(type(exc))
        try:
            self.run.alert("training_error", f"{type(exc).__name__}: {exc}"[:2000], severity="critical")
            self.close(status, timeout=min(30.0, lifecycle.exit_timeout()))
        except Exception as inner:  # never mask the training error
            log.warning("rldk_track: could not finish the run after a training error: %s", inner)

    # -- what the wrappers call --------------------------------------------------------
    def note_kl_coef(self, trainer: Any) -> None:
        """Remember the KL coefficient as a PPO step begins: the value that step uses (the
        controller updates it at the end of the step, before OpenRLHF logs)."""
        self._kl_coef = _kl_coef_of(trainer)

    def log_train(self, trainer: Any, args: Any, global_step: Any, logs_dict: Mapping[str, Any] | None) -> None:
        """Log one ``save_logs_and_checkpoints`` call (on OpenRLHF's ``logging_steps`` cadence)."""
        now = time.monotonic()
        since_last = None if self._last_log_time is None else now - self._last_log_time
        self._last_log_time = now
        step = _as_step(global_step)
        if step is None or step % max(1, int(_get(args, "logger.logging_steps", 1) or 1)):
            return
        run = self.ensure_run(trainer, args)
        if run is None or not run.active:
            return
        values: dict[str, Any] = {}
        for key, value in (logs_dict or {}).items():
            if key == SAMPLES_KEY:
                self._log_samples(run, step, value)
            else:
                values[str(key)] = value
        kl_coef, self._kl_coef = self._kl_coef, None
        if kl_coef is None:
            kl_coef = _kl_coef_of(trainer)
        if kl_coef is not None:
            values.setdefault("kl_coef", kl_coef)
        if since_last is not None and "timing/step_total" not in values:
            values["perf/step_s"] = since_last
        values.update(_process_memory())
        run.log(_canonical(values), step=step)

    def log_eval(self, trainer: Any, args: Any, step: Any, values: Mapping[str, Any]) -> None:
        """Log evaluation results under ``eval_<key>`` (canonical ``eval/<name>``)."""
        step = _as_step(step)
        if step is None or not values:
            return
        run = self.ensure_run(trainer, args)
        if run is None or not run.active:
            return
        renamed = {_eval_key(str(k)): v for k, v in values.items() if k != "global_step"}
        run.log(_canonical(renamed), step=step)

    def checkpoint_saved(self, args: Any, global_step: Any) -> None:
        """After OpenRLHF saved (when ``global_step`` is a save step): queue its HF-format
        checkpoint, ``{ckpt.path}/global_step{N}_hf``, for health analysis."""
        step = _as_step(global_step)
        run = self.run
        if not self.settings.checkpoint_health or step is None or run is None or not run.active:
            return
        save_steps = _get(args, "ckpt.save_steps")
        if not isinstance(save_steps, numbers.Real) or save_steps <= 0 or step % save_steps:
            return
        path = os.path.join(str(_get(args, "ckpt.path", ".")), f"global_step{step}_hf")
        if not os.path.isdir(path):  # saved in DeepSpeed format only, or on another node
            return
        if self._monitor is None:
            from rldk_track.producers.checkpoint_monitor import CheckpointMonitor

            self._monitor = CheckpointMonitor(run)
        self._monitor.submit(path, step)

    # -- samples -----------------------------------------------------------------------
    def _log_samples(self, run: "Run", step: int, sample: Any) -> None:
        """PPO's ``generated_samples`` (``[text, reward]``) as one row of the set ``completions``."""
        if not self.settings.samples or not sample:
            return
        text, reward = (list(sample) + [None, None])[:2] if isinstance(sample, (list, tuple)) else (sample, None)
        try:
            reward = float(reward) if reward is not None else None
        except (TypeError, ValueError):
            reward = None
        run.log_samples([{"text": text, "reward": reward}], step=step, name=SAMPLES_NAME)


_state_lock = threading.Lock()
_session: _Session | None = None


def _active_session() -> _Session | None:
    return _session


def current_run() -> "Run | None":
    """The run this process is recording into (None before OpenRLHF's first logging call)."""
    session = _session
    return session.run if session is not None else None


# -- wrappers ------------------------------------------------------------------------------
def _guarded(session: _Session | None, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return method(*args, **kwargs)
    except BaseException as exc:
        if session is not None:
            session.fail(exc)
        raise


def _quietly(what: str, action: Callable[[], None]) -> None:
    """Run our own bookkeeping; a bug in it is reported once and never reaches the trainer."""
    try:
        action()
    except Exception as exc:
        if what not in _reported:
            _reported.add(what)
            log.warning("rldk_track: OpenRLHF %s failed (%s: %s); training continues", what, type(exc).__name__, exc)


_reported: set[str] = set()


def _binder(original: Callable[..., Any]) -> Callable[..., dict[str, Any] | None]:
    signature = inspect.signature(original)

    def bind(*args: Any, **kwargs: Any) -> dict[str, Any] | None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return None  # let OpenRLHF's own method report the bad call
        bound.apply_defaults()
        return bound.arguments

    return bind


def _wrap_save_logs(original: Callable[..., Any]) -> Callable[..., Any]:
    """``save_logs_and_checkpoints``: log first (so the step is recorded even if saving fails),
    then OpenRLHF's method, then queue the checkpoint it saved. PPO's signature is
    ``(global_step, logs_dict, client_states)``; SFT/DPO/RM's adds ``args`` and ``step_bar``."""
    bind = _binder(original)

    @functools.wraps(original)
    def save_logs_and_checkpoints(self: Any, *args: Any, **kwargs: Any) -> Any:
        session = _active_session()
        call = bind(self, *args, **kwargs)
        if session is None or call is None:
            return _guarded(session, original, self, *args, **kwargs)
        run_args = call.get("args", getattr(self, "args", None))
        _quietly("logging", lambda: session.log_train(self, run_args, call["global_step"], call.get("logs_dict")))
        result = _guarded(session, original, self, *args, **kwargs)
        _quietly("checkpoint health", lambda: session.checkpoint_saved(run_args, call["global_step"]))
        return result

    return save_logs_and_checkpoints


def _wrap_ppo_train_step(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def train_step(self: Any, *args: Any, **kwargs: Any) -> Any:
        session = _active_session()
        if session is not None:
            _quietly("KL coefficient", lambda: session.note_kl_coef(self))
        return _guarded(session, original, self, *args, **kwargs)

    return train_step


def _wrap_ppo_save_best(original: Callable[..., Any]) -> Callable[..., Any]:
    bind = _binder(original)

    @functools.wraps(original)
    def save_best_checkpoint(self: Any, *args: Any, **kwargs: Any) -> Any:
        session = _active_session()
        call = bind(self, *args, **kwargs)
        if session is not None and call is not None:
            _quietly("eval logging", lambda: session.log_eval(self, self.args, call["global_step"], call.get("eval_metrics") or {}))
        return _guarded(session, original, self, *args, **kwargs)

    return save_best_checkpoint


def _wrap_sft_evaluate(original: Callable[..., Any]) -> Callable[..., Any]:
    """SFT/DPO/RM ``evaluate`` returns nothing; it hands its results to ``self._wandb.log`` or
    ``self._tensorboard.add_scalar`` on rank 0. For the duration of the call we put a tee there
    that records them (and forwards to the user's own logger, if any)."""
    bind = _binder(original)

    @functools.wraps(original)
    def evaluate(self: Any, *args: Any, **kwargs: Any) -> Any:
        session = _active_session()
        call = bind(self, *args, **kwargs)
        if session is None or call is None or session.run is None or not session.run.active:
            return _guarded(session, original, self, *args, **kwargs)
        tee = _EvalTee(getattr(self, "_wandb", None), getattr(self, "_tensorboard", None))
        saved = (getattr(self, "_wandb", None), getattr(self, "_tensorboard", None))
        if saved[0] is not None:
            self._wandb = tee.as_wandb()
        else:
            self._tensorboard = tee.as_tensorboard()
        try:
            return _guarded(session, original, self, *args, **kwargs)
        finally:
            self._wandb, self._tensorboard = saved
            _quietly("eval logging", lambda: session.log_eval(self, self.args, call.get("steps", 0), tee.values))

    return evaluate


class _EvalTee:
    """Stands where SFT/DPO/RM ``evaluate`` sends its results; records ``eval/<key>`` values."""

    def __init__(self, wandb: Any, tensorboard: Any) -> None:
        self.values: dict[str, Any] = {}
        self._wandb = wandb
        self._tensorboard = tensorboard

    def _record(self, key: Any, value: Any) -> None:
        key = str(key)
        if key.startswith("eval/"):
            self.values[key[len("eval/"):]] = value

    def as_wandb(self) -> Any:
        tee, real = self, self._wandb

        class WandbTee:
            def log(self, data: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
                for key, value in data.items():
                    tee._record(key, value)
                return real.log(data, *args, **kwargs)

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

        return WandbTee()

    def as_tensorboard(self) -> Any:
        tee, real = self, self._tensorboard

        class TensorBoardTee:
            def add_scalar(self, tag: str, value: Any, *args: Any, **kwargs: Any) -> Any:
                tee._record(tag, value)
                return real.add_scalar(tag, value, *args, **kwargs) if real is not None else None

            def __getattr__(self, name: str) -> Any:
                if real is None:
                    raise AttributeError(name)
                return getattr(real, name)

        return TensorBoardTee()


def _wrap_guard_only(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _guarded(_active_session(), original, self, *args, **kwargs)

    return guarded


@dataclass(frozen=True)
class _Patch:
    module: str
    cls: str
    method: str
    wrap: Callable[[Callable[..., Any]], Callable[..., Any]]


_SFT_FAMILY = (
    ("openrlhf.trainer.sft_trainer", "SFTTrainer"),
    ("openrlhf.trainer.dpo_trainer", "DPOTrainer"),
    ("openrlhf.trainer.rm_trainer", "RewardModelTrainer"),
)
PATCHES: tuple[_Patch, ...] = (
    _Patch("openrlhf.trainer.ppo_trainer", "BasePPOTrainer", "save_logs_and_checkpoints", _wrap_save_logs),
    _Patch("openrlhf.trainer.ppo_trainer", "BasePPOTrainer", "train_step", _wrap_ppo_train_step),
    _Patch("openrlhf.trainer.ppo_trainer", "BasePPOTrainer", "save_best_checkpoint", _wrap_ppo_save_best),
    _Patch("openrlhf.trainer.ppo_utils.samples_generator", "SamplesGenerator", "generate_samples", _wrap_guard_only),
    *(_Patch(module, cls, "save_logs_and_checkpoints", _wrap_save_logs) for module, cls in _SFT_FAMILY),
    *(_Patch(module, cls, "evaluate", _wrap_sft_evaluate) for module, cls in _SFT_FAMILY),
    *(_Patch(module, cls, "fit", _wrap_guard_only) for module, cls in _SFT_FAMILY),
)


def _patch_module(module: ModuleType) -> None:
    for patch in PATCHES:
        if patch.module != module.__name__:
            continue
        cls = getattr(module, patch.cls, None)
        original = getattr(cls, "__dict__", {}).get(patch.method) if cls is not None else None
        if original is None:
            log.warning("rldk_track: %s.%s.%s not found; this OpenRLHF version is not supported "
                        "(tested with 0.11.2)", patch.module, patch.cls, patch.method)
            continue
        if getattr(original, "__rldk_original__", None) is not None:
            continue  # already patched
        wrapper = patch.wrap(original)
        wrapper.__rldk_original__ = original  # type: ignore[attr-defined]
        setattr(cls, patch.method, wrapper)


def _unpatch_module(module: ModuleType) -> None:
    for patch in PATCHES:
        cls = getattr(module, patch.cls, None) if patch.module == module.__name__ else None
        current = getattr(cls, "__dict__", {}).get(patch.method) if cls is not None else None
        original = getattr(current, "__rldk_original__", None)
        if original is not None:
            setattr(cls, patch.method, original)


def is_patched(cls: type, method: str = "save_logs_and_checkpoints") -> bool:
    """Whether ``cls.method`` (as this process sees it) is wrapped by rldk_track."""
    return getattr(getattr(cls, method, None), "__rldk_original__", None) is not None


# -- public API ------------------------------------------------------------------------------
def install(
    backend: str | Sequence[str] | None = None,
    *,
    checkpoint_health: bool = True,
    samples: bool = True,
    system_metrics: bool | float = False,
    **init_kwargs: Any,
) -> bool:
    """Record OpenRLHF training in this process into ``backend`` (see :func:`rldk_track.init`).

    Wraps the trainers' ``save_logs_and_checkpoints`` now if OpenRLHF is imported, else as soon as
    it is. ``init_kwargs`` go to :func:`rldk_track.init` when the run starts (``project``,
    ``run_name``, ``dir``, ``tags``, ``per_rank``, ``analyzers`` — default ``"default"`` — and
    per-backend options). ``samples``: record PPO's ``generated_samples`` as the sample set
    ``completions`` (one row a logging step; default limits). ``system_metrics``: sample GPU/CPU/memory on one process per node every
    10 s (True) or every that many seconds (a number), as :class:`~rldk_track.integrations.trl.RLDKCallback`
    does. Calling it again replaces the settings for runs not yet started.
    Returns False, and changes nothing, when OpenRLHF is not installed. A misspelled backend, or
    one whose package is missing, raises here (as :class:`~rldk_track.integrations.trl.RLDKCallback`
    does), not at OpenRLHF's first logging call.

    For PPO (Ray) this is not enough on its own: see :func:`ray_runtime_env`.
    """
    from rldk_track.run import resolve_backends  # not at import: Ray workers import this module

    resolve_backends(backend)
    settings = Settings(
        backend=list(backend) if isinstance(backend, (list, tuple)) else backend,
        init=dict(init_kwargs),
        checkpoint_health=checkpoint_health,
        samples=samples,
        system_metrics=system_metrics,
    )
    return install_settings(settings)


def install_settings(settings: Settings) -> bool:
    """:func:`install` with a prebuilt :class:`Settings`."""
    global _session
    if not openrlhf_installed():
        log.warning("rldk_track: OpenRLHF is not installed, so there is nothing to record; "
                    "install it (see docs/openrlhf.md) or use rldk_track.init() in your own loop")
        return False
    with _state_lock:
        recording = _session is not None and _session.run is not None and not _session.closed
        if recording and _session.settings != settings:
            log.warning("rldk_track: OpenRLHF recording already started (run %s); new settings apply "
                        "after uninstall()", _session.run.id)
        elif not recording:
            _session = _Session(settings)
    for name in sorted({p.module for p in PATCHES}):
        post_import.when_imported(name, _patch_module)
    return True


def openrlhf_installed() -> bool:
    """Whether ``import openrlhf`` can work here (without importing it)."""
    try:
        return importlib.util.find_spec("openrlhf") is not None
    except (ImportError, ValueError):
        return False


def install_from_env() -> bool:
    """:func:`install` with the settings in ``RLDK_OPENRLHF`` (set by the launcher), else defaults
    (backend from ``RLDK_TRACK_BACKENDS``)."""
    text = os.environ.get(SETTINGS_ENV, "").strip()
    try:
        settings = Settings.from_json(text) if text else Settings()
    except (ValueError, TypeError) as exc:
        log.warning("rldk_track: %s is not valid settings JSON (%s); using defaults", SETTINGS_ENV, exc)
        settings = Settings()
    return install_settings(settings)


def setup_worker() -> None:
    """Ray ``worker_process_setup_hook``: install the patch in this worker (never raises: a
    failing setup hook would stop the worker)."""
    try:
        install_from_env()
    except Exception as exc:
        log.warning("rldk_track: OpenRLHF setup hook failed: %s: %s", type(exc).__name__, exc)


def uninstall(status: str | None = None) -> None:
    """Restore OpenRLHF's methods, and end this process's run (``status`` default: success)."""
    global _session
    for name in sorted({p.module for p in PATCHES}):
        post_import.forget(name, _patch_module)
        module = sys.modules.get(name)
        if module is not None:
            _unpatch_module(module)
    with _state_lock:
        session, _session = _session, None
    if session is not None:
        session.close(status or "success")


def ray_runtime_env(
    settings: Settings | None = None,
    *,
    run_id: str,
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Ray ``runtime_env`` that records OpenRLHF PPO in the trainer actor: the setup hook plus
    the settings, run id, run directory and git commit as environment variables, merged into
    ``base``.

    OpenRLHF's ``train()`` calls ``ray.init`` only when Ray is not initialised yet, so its own
    defaults (``TOKENIZERS_PARALLELISM``, ``NCCL_DEBUG``, ``RAY_ENABLE_ZERO_COPY_TORCH_TENSORS``)
    are added here too, unless ``base`` or the environment sets them.
    """
    settings = settings or Settings()
    runtime_env = dict(base or {})
    hook = runtime_env.get("worker_process_setup_hook")
    if hook not in (None, SETUP_HOOK):
        raise ValueError(f"runtime_env already has worker_process_setup_hook={hook!r}; Ray allows one. "
                         f"Call {SETUP_HOOK}() from yours instead.")
    runtime_env["worker_process_setup_hook"] = SETUP_HOOK
    env_vars = {
        "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM", "true"),
        "NCCL_DEBUG": os.environ.get("NCCL_DEBUG", "WARN"),
        "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": os.environ.get("RAY_ENABLE_ZERO_COPY_TORCH_TENSORS", "1"),
        **dict(runtime_env.get("env_vars") or {}),
    }
    env_vars.update(settings_env(settings, run_id=run_id))
    runtime_env["env_vars"] = env_vars
    return runtime_env


def settings_env(settings: Settings, *, run_id: str) -> dict[str, str]:
    """Environment variables that make every process of one training run record into one run,
    with the git commit checked out here (a Ray actor may run on a node without the repository)."""
    init = dict(settings.init)
    env = {SETTINGS_ENV: settings.to_json(), "RLDK_RUN_ID": init.get("run_id") or run_id}
    env["RLDK_TRACK_DIR"] = str(run_dir_of(settings))
    sha = os.environ.get(GIT_COMMIT_ENV, "").strip() or git_commit(Path.cwd())
    if sha:
        env[GIT_COMMIT_ENV] = sha
    return env


def run_dir_of(settings: Settings) -> Path:
    """The (absolute) run directory the settings point at, as every process will see it."""
    return resolve_run_dir(settings.init.get("dir"))


# -- helpers ---------------------------------------------------------------------------------
def _get(obj: Any, dotted: str, default: Any = None) -> Any:
    """``args.logger.logging_steps`` from OpenRLHF's nested namespace (or a flat ``logging_steps``)."""
    for candidate in (dotted, dotted.rsplit(".", 1)[-1]):
        value: Any = obj
        for part in candidate.split("."):
            value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
            if value is None:
                break
        if value is not None:
            return value
    return default


def _kl_coef_of(trainer: Any) -> float | None:
    value = getattr(getattr(trainer, "kl_ctl", None), "value", None)
    return float(value) if isinstance(value, numbers.Real) else None


def _as_step(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _canonical(values: Mapping[str, Any]) -> dict[str, Any]:
    scalars = {k: v for k, v in values.items() if type(v) in _SCALAR_TYPES or _scalar_like(v)}
    out = dict(values)
    out.update(canonicalize(scalars, FRAMEWORK))
    return out


_SCALAR_TYPES = frozenset({float, int, bool})


def _scalar_like(value: Any) -> bool:
    return isinstance(value, numbers.Real) or hasattr(value, "item")


def _eval_key(key: str) -> str:
    """OpenRLHF's evaluation keys as one family: ``eval_loss``, ``eval gpt_loss`` and
    ``acc_mean`` (DPO/RM) become ``eval_loss``, ``eval_gpt_loss``, ``eval_acc_mean``."""
    key = key.strip().replace(" ", "_")
    return key if key.startswith("eval_") else f"eval_{key}"


def _process_memory() -> dict[str, float]:
    """This process's peak memory: resident set, and the GPU's allocator peak when CUDA is in use.
    Cheap (no device synchronisation), so it can run on the training thread each step."""
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    values = {"system/peak_proc_rss_gb": rss_kb * 1024.0 / GB}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        values["system/peak_cuda_alloc_gb"] = torch.cuda.max_memory_allocated() / GB
    return values


def _samples_this_node(per_rank: bool) -> bool:
    """One system sampler per node: global rank 0, and with ``per_rank`` each node's local rank 0."""
    from rldk_track.distributed import rank_and_world_size

    if rank_and_world_size()[0] == 0:
        return True
    return per_rank and os.environ.get("LOCAL_RANK", "0").strip() in ("", "0")


def _class_name(obj: Any) -> str:
    cls = type(obj)
    return getattr(cls, "__ray_actor_class__", cls).__name__


def run_config(args: Any) -> dict[str, Any]:
    """The run's config: OpenRLHF's argument tree (``--actor.*``, ``--logger.*``...) plus the
    ``versions`` and ``git`` keys every integration records. (OpenRLHF has no argument group
    named ``versions`` or ``git``, so neither hides an argument.)"""
    from rldk_track.normalize import to_jsonable

    tree = to_jsonable(args) if args is not None else {}
    config = dict(tree) if isinstance(tree, Mapping) else {"args": tree}
    config.update(provenance(FRAMEWORK_PACKAGES))
    return config


def launcher_status_path_for(run_dir: str | os.PathLike[str], run_id: str) -> Path:
    """Where the launcher leaves the driver's failure for the trainer actor's run to pick up."""
    return RunLayout(Path(run_dir), run_id).events_dir / f"{run_id}{LAUNCHER_STATUS_SUFFIX}"


def _launcher_status(run: "Run") -> str | None:
    try:
        status = launcher_status_path_for(run.dir, run.id).read_text().strip()
    except OSError:
        return None
    return status if status in ("failed", "killed") else None


if __name__ == "__main__":  # python -m rldk_track.integrations.openrlhf: the launcher, which imports this module
    from rldk_track.integrations.openrlhf_launch import main

    sys.exit(main())
