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

``on_score``, if given, sees each :class:`Scored` batch (prompts, completions, rewards, step) at
scoring time: the hook for a sample source. Reward models (``nn.Module``) are not callables TRL
calls with completions, so they are passed through unwrapped.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

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


class RewardWatch:
    """Wraps reward functions; see the module docstring."""

    def __init__(self, on_score: Callable[[Scored], None] | None = None) -> None:
        self.on_score = on_score
        self._pending: dict[str, list[float]] = {}  # metric -> values since the last take_metrics()

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
        call = getattr(func, "__call__", func)
        if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(call):
            @functools.wraps(func)
            async def watched_async(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                rewards = await func(*args, **kwargs)
                self._record(name, rewards, time.perf_counter() - start, kwargs)
                return rewards
            watched_async.__name__ = name
            return watched_async

        @functools.wraps(func)
        def watched(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            rewards = func(*args, **kwargs)
            self._record(name, rewards, time.perf_counter() - start, kwargs)
            return rewards
        watched.__name__ = name  # a callable instance has none to copy: TRL names it by its class
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
        if self.on_score is not None:
            state = kwargs.get("trainer_state")
            self.on_score(Scored(name, getattr(state, "global_step", None), kwargs.get("prompts", ()),
                                 kwargs.get("completions", ()), values, seconds))


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
