"""``compare(runs, metrics, baseline)``: per-run summaries of each metric and tests against a baseline.

Per run and metric (the ``summary`` frame): the final-window mean with its bootstrap CI, the
window's effective sample size, the best value and its step (best = max, or min for metrics whose
goal is to go down, see :func:`goal_of`), the last value, the area under the curve over the x range
all runs share, the first x where the smoothed curve reaches a threshold, and the alerts raised on
that metric. Against the baseline (the ``tests`` frame): difference, effect size, Welch and
Mann-Whitney p-values and a verdict (rules in :mod:`rldk_track.compare.stats`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from rldk_track.alerts import ALERT_FIELDS, counted
from rldk_track.compare import stats
from rldk_track.compare.align import Curve, curves
from rldk_track.keymaps import resolve
from rldk_track.readers.runset import FRAME_COLUMNS, RUN_COLUMNS, SAMPLE_KEYS, RunSet

if TYPE_CHECKING:
    import pandas as pd

#: Metrics compared when none are named, in this order, if the runs have them.
DEFAULT_METRICS = (
    "reward/mean", "kl/mean", "entropy/mean", "loss/total", "length/response_mean", "clip/ratio",
)
#: Name fragments of metrics that should go down (their "best" is the minimum).
LOWER_IS_BETTER = ("loss", "kl", "grad/norm", "perf/", "truncated", "alerts/", "clip", "nan", "error")


def goal_of(metric: str, goals: Mapping[str, str] | None = None) -> str:
    """``"min"`` or ``"max"``: ``goals[metric]`` if given, else ``min`` for names containing one
    of :data:`LOWER_IS_BETTER` (losses, KL, gradient norms, timings, clipping), else ``max``."""
    if goals and metric in goals:
        goal = goals[metric]
        if goal not in ("min", "max"):
            raise ValueError(f"goal for {metric!r} must be 'min' or 'max', not {goal!r}")
        return goal
    lowered = metric.lower()
    return "min" if any(fragment in lowered for fragment in LOWER_IS_BETTER) else "max"


def default_metrics(runset: RunSet) -> list[str]:
    """:data:`DEFAULT_METRICS` that any run has; otherwise the first six metrics every run has."""
    present = set(runset.metric_names)
    chosen = [m for m in DEFAULT_METRICS if m in present]
    if chosen:
        return chosen
    per_run = runset.frame.groupby("run", observed=True)["metric"].unique()
    common = set.intersection(*(set(map(str, v)) for v in per_run)) if len(per_run) else set()
    return sorted(common)[:6]


@dataclass
class Comparison:
    """The result of :func:`compare`: ``summary`` and ``tests`` frames plus what produced them."""

    runset: RunSet
    metrics: list[str]
    baseline: str
    summary: "pd.DataFrame"
    tests: "pd.DataFrame"
    settings: dict[str, Any]
    curves: dict[tuple[str, str], Curve] = field(repr=False, default_factory=dict)

    @property
    def verdicts(self) -> dict[tuple[str, str], str]:
        """``{(run, metric): verdict}`` against the baseline."""
        return {(r.run, r.metric): r.verdict for r in self.tests.itertuples()}

    def missing(self) -> list[tuple[str, str]]:
        """``(run, metric)`` pairs with no points (a metric that run never logged)."""
        return [(run, m) for run in self.runset.run_names for m in self.metrics if (run, m) not in self.curves]

    # -- output ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-able data (NaN becomes None)."""
        runs = self.runset.runs
        return _clean({
            "settings": self.settings,
            "baseline": self.baseline,
            "metrics": self.metrics,
            "runs": [
                {"run": name, **{k: runs.at[name, k] for k in ("run_id", "source", "backend", "status", "alerts")}}
                for name in runs.index
            ],
            "summary": self.summary.to_dict(orient="records"),
            "tests": self.tests.to_dict(orient="records"),
            "missing": [list(pair) for pair in self.missing()],
        })

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=str)

    def to_text(self) -> str:
        """Aligned plain-text tables for a terminal."""
        from rldk_track.compare.report import render_text

        return render_text(self)

    def to_markdown(self) -> str:
        from rldk_track.compare.report import render_markdown

        return render_markdown(self)

    def to_html(self, plot: bool = True) -> str:
        """A self-contained HTML report (tables, verdicts, alerts, the plot inlined as PNG)."""
        from rldk_track.compare.report import render_html

        return render_html(self, plot=plot)

    def plot(self, path: str | os.PathLike[str] | None = None, smoothing: float | None = None) -> bytes:
        """The curves as a PNG (one panel per metric, alerts marked); written to ``path`` if given."""
        from rldk_track.compare.plot import plot_comparison

        png = plot_comparison(self, smoothing=self.settings["smoothing"] if smoothing is None else smoothing)
        if path is not None:
            Path(path).write_bytes(png)
        return png

    def log_to(self, run: Any, name: str = "rldk/compare.html") -> None:
        """Attach the HTML report to an ``rldk_track`` run (every tracker it records to)."""
        run.log_artifact(self.to_html().encode("utf-8"), name=name)


def compare(
    runs: RunSet | "pd.DataFrame" | str | Sequence[str],
    metrics: Sequence[str] | None = None,
    baseline: str | None = None,
    *,
    last: str | int | float = "20%",
    x: str = "step",
    smoothing: float = 0.6,
    thresholds: Mapping[str, float] | None = None,
    goals: Mapping[str, str] | None = None,
    alpha: float = stats.ALPHA,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    tracking_uri: str | None = None,
) -> Comparison:
    """Compare runs metric by metric against ``baseline`` (default: the first run).

    ``runs`` is a :class:`RunSet`, a long frame (``run, step, metric, value[, wall_time]``), or
    sources for :func:`~rldk_track.readers.load_runs`. ``last`` is the final window (``"20%"``
    of each curve's points, or a number of points). ``x`` is the axis for the area under the
    curve and reaching ``thresholds`` (``step``, ``wall_time`` or ``tokens``); ``smoothing`` is the
    EMA weight used for the plot and for reaching thresholds. ``goals`` overrides which way is
    better per metric (``"min"``/``"max"``).
    """
    import pandas as pd

    runset = _as_runset(runs, tracking_uri)
    if len(runset) == 0:
        raise ValueError("no runs to compare")
    metrics = list(metrics) if metrics else default_metrics(runset)
    if not metrics:
        raise ValueError("the runs share no metric; name the metrics to compare")
    known = set(runset.metric_names)
    metrics = [resolve(m, known) for m in metrics]  # a TRL/OpenRLHF key finds its canonical name
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise KeyError(f"no run logged {', '.join(map(repr, unknown))}; metrics: {', '.join(sorted(known)[:30])}")
    names = runset.run_names
    baseline = baseline or names[0]
    if baseline not in names:
        raise KeyError(f"baseline {baseline!r} is not among the runs: {', '.join(names)}")
    stats.parse_window(last)

    by_curve = curves(runset.frame, metrics, x)
    alerts = runset.alerts
    raised = alerts[[counted(a) for a in alerts.to_dict("records")]] if len(alerts) else alerts
    summary_rows: list[dict[str, Any]] = []
    test_rows: list[dict[str, Any]] = []
    for metric in metrics:
        goal = goal_of(metric, goals)
        present = [run for run in names if (run, metric) in by_curve and len(by_curve[run, metric])]
        lo = max((by_curve[r, metric].x[0] for r in present), default=math.nan)
        hi = min((by_curve[r, metric].x[-1] for r in present), default=math.nan)
        threshold = (thresholds or {}).get(metric)
        windows: dict[str, np.ndarray] = {}
        for run in present:
            curve = by_curve[run, metric]
            window = curve.final(stats.window_size(len(curve), last))
            windows[run] = window[np.isfinite(window)]
            summary_rows.append(_summarize(run, metric, goal, curve, windows[run], lo, hi, threshold,
                                           smoothing, confidence, resamples, seed, raised))
        if baseline not in windows:
            continue
        for run in present:
            if run == baseline:
                continue
            result = stats.compare_samples(windows[run], windows[baseline], name=run, alpha=alpha)
            test_rows.append({"run": run, "metric": metric, "baseline": baseline, **result.as_dict()})

    settings = {"last": str(last), "x": x, "smoothing": smoothing, "alpha": alpha, "confidence": confidence,
                "resamples": resamples, "seed": seed, "thresholds": dict(thresholds or {}),
                "min_effective_points": stats.MIN_EFFECTIVE_POINTS}
    return Comparison(runset, metrics, baseline, pd.DataFrame(summary_rows, columns=SUMMARY_COLUMNS),
                      pd.DataFrame(test_rows, columns=TEST_COLUMNS), settings, by_curve)


SUMMARY_COLUMNS = [
    "run", "metric", "goal", "points", "window", "final_mean", "ci_low", "ci_high", "final_std", "n_eff",
    "best", "best_step", "last", "last_step", "auc", "auc_from", "auc_to", "threshold", "reached_at", "alerts",
]
TEST_COLUMNS = [
    "run", "metric", "baseline", "difference", "relative_difference", "effect_size", "welch_t", "welch_p",
    "mannwhitney_u", "mannwhitney_p", "adjusted_p", "n", "n_baseline", "n_eff", "n_eff_baseline",
    "direction", "significant", "verdict",
]


def _summarize(
    run: str, metric: str, goal: str, curve: Curve, window: np.ndarray, lo: float, hi: float,
    threshold: float | None, smoothing: float, confidence: float, resamples: int, seed: int,
    raised: "pd.DataFrame",
) -> dict[str, Any]:
    finite = np.isfinite(curve.value)
    values = np.where(finite, curve.value, np.nan)
    best_index = None
    if finite.any():
        best_index = int(np.nanargmin(values) if goal == "min" else np.nanargmax(values))
    low, high = stats.bootstrap_mean_ci(window, confidence, resamples, seed=seed)
    in_range = (curve.x >= lo) & (curve.x <= hi) & finite
    reached = None
    if threshold is not None:
        reached = stats.first_reach(curve.x, stats.ema(curve.value, smoothing), threshold, goal)
    alert_count = 0
    if len(raised):
        alert_count = int(((raised["run"] == run) & (raised["metric"] == metric)).sum())
    return {
        "run": run, "metric": metric, "goal": goal, "points": len(curve), "window": int(window.size),
        "final_mean": float(window.mean()) if window.size else math.nan,
        "ci_low": low, "ci_high": high,
        "final_std": float(window.std(ddof=1)) if window.size > 1 else math.nan,
        "n_eff": stats.effective_sample_size(window),
        "best": float(values[best_index]) if best_index is not None else math.nan,
        "best_step": int(curve.step[best_index]) if best_index is not None else None,
        "last": float(curve.value[-1]), "last_step": int(curve.step[-1]),
        "auc": stats.area_under_curve(curve.x[in_range], curve.value[in_range]),
        "auc_from": lo, "auc_to": hi,
        "threshold": threshold, "reached_at": reached, "alerts": alert_count,
    }


def _as_runset(runs: Any, tracking_uri: str | None) -> RunSet:
    import pandas as pd

    if isinstance(runs, RunSet):
        return runs
    if isinstance(runs, pd.DataFrame):
        return runset_from_frame(runs)
    from rldk_track.readers import load_runs

    return load_runs(runs, tracking_uri=tracking_uri)


def runset_from_frame(frame: "pd.DataFrame") -> RunSet:
    """A RunSet around a bare long frame (``run, step, metric, value[, wall_time]``); no alerts."""
    import pandas as pd

    missing = {"run", "step", "metric", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"the frame needs columns run, step, metric, value (missing {', '.join(sorted(missing))})")
    frame = frame.assign(
        run=_categorical(frame["run"]),
        metric=_categorical(frame["metric"]),
        step=frame["step"].astype("int64"),
        value=frame["value"].astype(float),
        wall_time=frame["wall_time"].astype(float) if "wall_time" in frame else np.nan,
    )[list(FRAME_COLUMNS)]
    names = [str(name) for name in frame["run"].unique()]
    table = pd.DataFrame(
        [{"name": n, "run_id": "", "source": "frame", "backend": "", "status": "", "params": {}, "tags": {},
          "summary": {}, "alerts": 0} for n in names],
        columns=list(RUN_COLUMNS), index=pd.Index(names, name="run"),
    )
    return RunSet(frame, table, pd.DataFrame(columns=["run", *ALERT_FIELDS]), pd.DataFrame(columns=list(SAMPLE_KEYS)))


def _categorical(column: "pd.Series") -> "pd.Series":
    """A column as a categorical of strings (kept as it is when it already is one)."""
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.rename_categories([str(c) for c in column.cat.categories])
    return column.astype(str).astype("category")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value
