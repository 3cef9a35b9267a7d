"""Curves out of a long frame, on a common x axis: training step, wall time, or tokens seen.

A step logged twice (a resumed run, a timer at the same step) keeps its last value. On
``wall_time`` the axis is seconds since the run's first point; on ``tokens`` it is the value of
the run's token counter (``tokens/total``, TRL's ``num_tokens``) last logged at or before each step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

AXES = ("step", "wall_time", "tokens")
TOKEN_METRICS = ("tokens/total", "num_tokens", "tokens")


@dataclass(frozen=True)
class Curve:
    """One run's metric in step order: ``x`` (the chosen axis), ``step`` and ``value``."""

    x: np.ndarray
    step: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return self.value.size

    def final(self, count: int) -> np.ndarray:
        """The last ``count`` values."""
        return self.value[self.value.size - count:] if count else self.value[:0]


def curves(frame: "pd.DataFrame", metrics: Sequence[str], x: str = "step") -> dict[tuple[str, str], Curve]:
    """``{(run, metric): Curve}`` for every run that has each metric, on axis ``x``."""
    if x not in AXES:
        raise ValueError(f"x axis must be one of {', '.join(AXES)}, not {x!r}")
    rows = frame[frame["metric"].isin(list(metrics))]
    rows = rows.sort_values(["run", "metric", "step"], kind="stable")
    rows = rows.drop_duplicates(["run", "metric", "step"], keep="last")
    origin = token_axes = None
    if x == "wall_time":
        origin = frame.groupby("run", observed=True)["wall_time"].min()
    elif x == "tokens":
        token_axes = _token_axes(frame)
    out: dict[tuple[str, str], Curve] = {}
    for (run, metric), group in rows.groupby(["run", "metric"], observed=True, sort=False):
        steps = group["step"].to_numpy()
        values = group["value"].to_numpy(dtype=float)
        if x == "step":
            axis = steps.astype(float)
        elif x == "wall_time":
            start = origin.get(run, np.nan)
            if not np.isfinite(start):
                raise ValueError(f"run {run!r} has no wall times; compare it on the step axis")
            axis = group["wall_time"].to_numpy(dtype=float) - start
        else:
            if run not in token_axes:
                raise ValueError(f"run {run!r} logs no token count ({' or '.join(TOKEN_METRICS)}); "
                                 "compare it on the step or wall_time axis")
            axis = token_axes[run](steps)
        keep = np.isfinite(axis)
        out[(str(run), str(metric))] = Curve(axis[keep], steps[keep], values[keep])
    return out


def _token_axes(frame: "pd.DataFrame") -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Per run, a function from steps to the token count last logged at or before each step."""
    out: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for name in TOKEN_METRICS:
        tokens = frame[frame["metric"] == name]
        for run, group in tokens.sort_values("step", kind="stable").groupby("run", observed=True):
            if str(run) in out:
                continue
            known_steps = group["step"].to_numpy()
            counts = group["value"].to_numpy(dtype=float)

            def axis(steps: np.ndarray, known_steps=known_steps, counts=counts) -> np.ndarray:
                index = np.searchsorted(known_steps, steps, side="right") - 1
                return np.where(index >= 0, counts[np.clip(index, 0, None)], np.nan)

            out[str(run)] = axis
    return out
