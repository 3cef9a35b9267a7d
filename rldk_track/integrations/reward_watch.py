"""Watch the reward functions a TRL trainer calls: non-finite outputs, None outputs, time per call.

A reward function that returns NaN leaves no trace in TRL's logged metrics (``GRPOTrainer``
averages rewards with ``nanmean``), so the only place to see it is the function itself::

    from rldk_track.integrations.reward_watch import RewardWatch

    watch = RewardWatch()
    trainer = GRPOTrainer(..., reward_funcs=watch([accuracy, format_reward]),
                          callbacks=[RLDKCallback()])

Each wrapped call logs, per function ``fn`` (its ``__name__``, which TRL also uses):

* ``reward/<fn>/nonfinite_frac``: the fraction of outputs that are NaN or +-Inf;
* ``reward/<fn>/none_frac``: the fraction that are ``None`` (TRL's way for a function to say
  "not applicable to this sample"; reported, not judged);
* ``perf/reward/<fn>_s``: seconds the call took.

With TRL's ``log_metric`` keyword (TRL 1.x passes it to reward functions) these go into the
trainer's own logs, averaged over each logging interval like its other metrics, and so through
``RLDKCallback`` to every tracker, where the ``reward_nonfinite`` rule reads them. Without it
(an older TRL, a plain loop), :meth:`RewardWatch.take_metrics` returns what accumulated since the
last call, for ``run.log``.

``samples=True`` makes the watch a sample source for any trainer that takes ``reward_funcs``: each
scored batch becomes one :class:`~rldk_track.records.Samples` set named ``rewards`` (``prompt``,
``completion``, ``reward`` — the weighted sum over the watched functions, with the trainer's
``reward_weights`` — and ``reward/<fn>``), at the
step the batch trains (TRL's ``trainer_state.global_step + 1``; outside a trainer, the run's last
step), bounded by the run's :class:`~rldk_track.samples.SampleLimits` like any ``log_samples``.
The calls of one batch (the same ``completions`` list, as TRL passes it to every function) are
gathered into one set, recorded as soon as every wrapped function has scored it (or when the next
batch comes, or at :meth:`RewardWatch.flush`). ``RLDKCallback`` attaches its run to the watches it
finds among ``trainer.reward_funcs`` when training starts; in a plain loop pass ``run=``. Batches
scored while the trainer evaluates are not recorded.

``on_score``, if given, sees each :class:`Scored` batch (prompts, completions, rewards, step) at
scoring time. Reward models (``nn.Module``) are not callables TRL calls with completions, so they
are passed through unwrapped.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from rldk_track.integrations.trl_samples import reward_weights, weighted_sum

if TYPE_CHECKING:
    from rldk_track.run import Run

log = logging.getLogger("rldk_track")

__all__ = ["RewardWatch", "Scored"]


@dataclass(frozen=True)
class Scored:
    """One call of one reward function: what it scored and what it returned."""

    fn: str
    step: int | None  # the trainer's global step (None outside a TRL trainer)
    prompts: Sequence[Any]
    completions: Sequence[Any]
    rewards: Sequence[float | None]
    seconds: float


#: The sample set name of :class:`RewardWatch` batches.
REWARDS = "rewards"


@dataclass
class _Batch:
    """The calls of one scored batch, gathered into one sample set."""

    key: tuple[int, int | None]
    step: int | None
    prompts: Sequence[Any]
    completions: Sequence[Any]
    rewards: dict[str, list[Any]] = field(default_factory=dict)


class RewardWatch:
    """Wraps reward functions; see the module docstring. ``samples``: record each scored batch as
    the sample set ``rewards``, into ``run`` (or the run :meth:`attach` gives)."""

    def __init__(self, on_score: Callable[[Scored], None] | None = None, *, samples: bool = False,
                 run: "Run | None" = None) -> None:
        self.on_score = on_score
        self.samples = samples
        self._pending: dict[str, list[float]] = {}  # metric -> values since the last take_metrics()
        self._run = run
        self._trainer: Callable[[], Any] = lambda: None
        self._wrapped: list[str] = []  # the names of the functions this watch wraps, in order
        self._batch: _Batch | None = None
        self._lock = threading.Lock()  # async reward functions score concurrently
        self._warned = False

    def attach(self, run: "Run", trainer: Any = None) -> None:
        """Record samples into ``run`` (``RLDKCallback`` calls this when training starts); with
        ``trainer``, its ``reward_weights`` weigh the ``reward`` column and its evaluation batches
        are left out."""
        self.flush()
        self._run = run
        self._trainer = weakref.ref(trainer) if trainer is not None else (lambda: None)

    def detach(self, run: "Run") -> None:
        """Record what is pending and stop recording into ``run`` (``RLDKCallback`` at the run's end)."""
        if self._run is run:
            self.flush()
            self._run = None
            self._trainer = lambda: None

    def flush(self) -> None:
        """Record the batch still gathering (one whose functions have not all scored it)."""
        with self._lock:
            batch, self._batch = self._batch, None
        if batch is not None:
            self._log_batch(batch)

    def __call__(self, funcs: Any) -> Any:
        """``funcs`` (one reward function or a list, as TRL's ``reward_funcs`` takes) wrapped."""
        if isinstance(funcs, (list, tuple)):
            return type(funcs)(self.wrap(f) for f in funcs)
        return self.wrap(funcs)

    def wrap(self, func: Any) -> Any:
        """``func`` wrapped (same name, same sync/async kind); a non-function (a reward model) as it is."""
        if not callable(func) or _is_module(func):
            return func
        name = _name(func)
        if name not in self._wrapped:
            self._wrapped.append(name)
        call = getattr(func, "__call__", func)
        if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(call):
            @functools.wraps(func)
            async def watched_async(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                rewards = await func(*args, **kwargs)
                self._record(name, rewards, time.perf_counter() - start, kwargs)
                return rewards
            watched_async.__name__ = name
            watched_async.__rldk_watch__ = self  # type: ignore[attr-defined]
            return watched_async

        @functools.wraps(func)
        def watched(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            rewards = func(*args, **kwargs)
            self._record(name, rewards, time.perf_counter() - start, kwargs)
            return rewards
        watched.__name__ = name  # a callable instance has none to copy: TRL names it by its class
        watched.__rldk_watch__ = self  # type: ignore[attr-defined]
        return watched

    def take_metrics(self) -> dict[str, float]:
        """The metrics since the last call (means per metric), when TRL's ``log_metric`` was not
        there to take them; empty otherwise."""
        out = {k: sum(v) / len(v) for k, v in self._pending.items() if v}
        self._pending.clear()
        return out

    def _record(self, name: str, rewards: Any, seconds: float, kwargs: dict[str, Any]) -> None:
        try:
            values = list(rewards)
        except TypeError:
            return  # not a list of rewards: TRL will raise about it itself
        n = len(values)
        if n:
            nonfinite = sum(1 for r in values if r is not None and not _finite(r))
            none = sum(1 for r in values if r is None)
            metrics = {f"reward/{name}/nonfinite_frac": nonfinite / n, f"reward/{name}/none_frac": none / n,
                       f"perf/reward/{name}_s": seconds}
            log_metric = kwargs.get("log_metric")
            for key, value in metrics.items():
                if callable(log_metric):
                    log_metric(key, value)
                else:
                    self._pending.setdefault(key, []).append(value)
        state = kwargs.get("trainer_state")
        if self.samples:
            try:
                self._gather(name, getattr(state, "global_step", None), kwargs, values)
            except Exception as exc:  # recording samples must never break scoring
                log.warning("rldk_track: RewardWatch samples of %s not recorded: %s: %s", name, type(exc).__name__, exc)
        if self.on_score is not None:
            self.on_score(Scored(name, getattr(state, "global_step", None), kwargs.get("prompts", ()),
                                 kwargs.get("completions", ()), values, seconds))

    def _gather(self, name: str, global_step: Any, kwargs: dict[str, Any], values: list[Any]) -> None:
        """Add one function's rewards to its batch; record the batch once every function scored it."""
        run = self._run
        if run is None:
            if not self._warned and _rank() == 0:  # other ranks record nothing anyway
                self._warned = True
                log.warning("rldk_track: RewardWatch(samples=True) has no run to record into: pass run=, "
                            "or train with RLDKCallback; these samples are not recorded (reported once)")
            return
        trainer = self._trainer()
        if trainer is not None and getattr(getattr(trainer, "model", None), "training", True) is False:
            return  # an evaluation batch
        step = global_step + 1 if isinstance(global_step, int) else None  # the step this batch trains
        if step is not None and not run.sample_limits.wants(step):
            return
        completions = kwargs.get("completions", ())
        key = (id(completions), step)
        done: list[_Batch] = []
        with self._lock:
            batch = self._batch
            if batch is not None and batch.key != key:
                done.append(batch)
                batch = None
            if batch is None:
                batch = self._batch = _Batch(key, step, kwargs.get("prompts", ()), completions)
            batch.rewards[name] = values
            if all(n in batch.rewards for n in self._wrapped):
                done.append(batch)
                self._batch = None
        for finished in done:
            self._log_batch(finished)

    def _log_batch(self, batch: _Batch) -> None:
        run = self._run
        if run is None:
            return
        completions = list(batch.completions)
        table: dict[str, list[Any]] = {"prompt": list(batch.prompts), "completion": completions}
        names = list(batch.rewards)
        table["reward"] = weighted_sum(batch.rewards, _weights(self._trainer(), names), len(completions))
        table.update({f"reward/{n}": list(batch.rewards[n]) for n in names})
        run.log_samples(table, step=batch.step, name=REWARDS)


def _weights(trainer: Any, names: list[str]) -> list[float]:
    """The trainer's weight of each named function (1.0 without a trainer or for an unknown name)."""
    known = [str(n) for n in getattr(trainer, "reward_func_names", None) or ()]
    by_name = dict(zip(known, reward_weights(trainer, len(known))))
    return [by_name.get(n, 1.0) for n in names]


def _rank() -> int:
    from rldk_track.distributed import rank_and_world_size

    return rank_and_world_size()[0]


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _name(func: Any) -> str:
    while isinstance(func, functools.partial):
        func = func.func
    return getattr(func, "__name__", type(func).__name__)


def _is_module(func: Any) -> bool:
    return any(cls.__name__ == "Module" and cls.__module__.startswith("torch.nn") for cls in type(func).__mro__)
