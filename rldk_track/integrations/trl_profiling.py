"""TRL's own profiling timings (``trl.extras.profiling``) as ``perf/*`` metrics.

TRL times generation, each reward function and a few methods of its online trainers (GRPO, RLOO,
distillation...) with ``ProfilingContext``, and sends each duration straight to W&B, MLflow or
trackio when ``report_to`` names them; nothing reaches ``TrainerCallback.on_log``. Every
``ProfilingContext`` ends in ``ProfilingContext._log_metrics(duration)``, whatever ``report_to``
says, so that is where :class:`ProfilingTimings` listens: while at least one trainer is recorded,
the method is wrapped (TRL's own logging still runs, unchanged) and each duration of a block
named ``<TrainerClass>.<block>`` goes to the recorded trainer of that class. When the last one
finishes, TRL's method is put back.

At each logging step, :meth:`ProfilingTimings.take` gives each block's total seconds divided by
the optimizer steps since the previous logging step: seconds a step spent in that block,
comparable with ``perf/step_s``. Names (:data:`rldk_track.keymaps.TRL_PROFILING`):
``perf/generate_s``, ``perf/reward_s`` (all reward functions), ``perf/reward/<fn>_s``,
``perf/prepare_inputs_s`` (which contains generation and scoring), ``perf/logps_s``,
``perf/compute_loss_s``, ``perf/sync_weights_s`` (vLLM). Blocks run during evaluation (the model
in eval mode) are not counted.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from typing import Any, Callable

from rldk_track.keymaps import trl_profiling_metric

log = logging.getLogger("rldk_track")

__all__ = ["ProfilingTimings"]

_METHOD = "_log_metrics"
_lock = threading.Lock()
_listening: tuple["ProfilingTimings", ...] = ()  # the recorded trainers, latest last (replaced, never mutated)
_installed: tuple[type, Callable[..., Any], Callable[..., Any]] | None = None  # (class, TRL's method, ours)


class ProfilingTimings:
    """The profiled blocks of one trainer, summed between logging steps (see the module docstring)."""

    def __init__(self, trainer: Any, step: int) -> None:
        self._trainer = weakref.ref(trainer)  # a trainer left behind by a crashed train() can go
        self._prefix = f"{type(trainer).__name__}."
        self._reward_funcs = frozenset(str(n) for n in getattr(trainer, "reward_func_names", None) or ())
        self._names: dict[str, str] = {}
        self._totals: dict[str, float] = {}
        self._totals_lock = threading.Lock()  # async reward functions finish on TRL's event-loop thread
        self._since = step

    def start(self) -> bool:
        """Listen to TRL's profiling for this trainer; False when this TRL has no ``ProfilingContext``
        to listen to (reported once)."""
        global _listening
        with _lock:
            if not _install():
                return False
            if self not in _listening:
                _listening = (*_listening, self)
        return True

    def stop(self) -> None:
        """Stop listening; the last one to stop puts TRL's method back."""
        global _listening
        with _lock:
            _listening = tuple(t for t in _listening if t is not self)
            if not _listening:
                _uninstall()

    def take(self, step: int) -> dict[str, float]:
        """Seconds per optimizer step in each block since the last call (empty when no step passed)."""
        steps = step - self._since
        if steps <= 0:
            return {}
        with self._totals_lock:
            totals, self._totals = self._totals, {}
        self._since = step
        return {name: seconds / steps for name, seconds in totals.items()}

    def _observe(self, name: str, seconds: float) -> bool:
        """Count one finished block if it is this trainer's; True if it was."""
        trainer = self._trainer()
        if trainer is None or not name.startswith(self._prefix):
            return False
        model = getattr(trainer, "model", None)
        if model is not None and getattr(model, "training", True) is False:
            return True  # evaluation: this trainer's, not a training step's
        block = name[len(self._prefix):]
        metric = self._names.get(block)
        if metric is None:
            metric = self._names[block] = trl_profiling_metric(block, self._reward_funcs)
        with self._totals_lock:
            self._totals[metric] = self._totals.get(metric, 0.0) + seconds
        return True


def _dispatch(name: Any, duration: Any) -> None:
    if not isinstance(name, str) or not isinstance(duration, (int, float)):
        return
    for timings in reversed(_listening):  # the latest recorded trainer of a class wins
        if timings._observe(name, float(duration)):
            return


def _install() -> bool:
    global _installed
    if _installed is not None:
        return True
    try:
        from trl.extras import profiling
    except Exception as exc:  # TRL missing or broken: a plain transformers Trainer still records
        log.debug("rldk_track: TRL's profiling is not importable (%s); no perf/* timings from it", exc)
        return False
    cls = getattr(profiling, "ProfilingContext", None)
    original = getattr(cls, "__dict__", {}).get(_METHOD)
    if not callable(original):
        log.warning("rldk_track: trl.extras.profiling.ProfilingContext.%s not found in this TRL version; "
                    "TRL's profiling timings are not recorded (tested with TRL 1.16)", _METHOD)
        return False

    @functools.wraps(original)
    def log_metrics(self: Any, duration: float) -> Any:
        try:
            _dispatch(getattr(self, "name", None), duration)
        except Exception as exc:  # our bookkeeping never breaks TRL's step
            log.debug("rldk_track: a TRL profiling timing was not recorded: %s", exc)
        return original(self, duration)

    log_metrics.__rldk_original__ = original  # type: ignore[attr-defined]
    setattr(cls, _METHOD, log_metrics)
    _installed = (cls, original, log_metrics)
    return True


def _uninstall() -> None:
    global _installed
    if _installed is None:
        return
    cls, original, ours = _installed
    if cls.__dict__.get(_METHOD) is ours:
        setattr(cls, _METHOD, original)
        _installed = None
    # else someone wrapped it after us: theirs stays, and ours beneath it (still installed, so
    # never wrapped twice) passes every call through while no trainer listens.
