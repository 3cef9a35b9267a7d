"""The comparison as a PNG: one panel per metric, each run's raw curve faint and its EMA-smoothed
curve solid, alerts marked where they were raised.

An alert about a plotted metric is a marker on that run's smoothed curve at the alert's step
(shape by severity: ``o`` info, ``^`` warning, ``X`` critical). An alert about a metric that is not
plotted (or about none) is a tick along the bottom edge of every panel, in the run's colour.
Drawn with matplotlib's object API on an Agg canvas: no pyplot state, safe off the main thread.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np

from rldk_track.compare.stats import ema

if TYPE_CHECKING:
    from rldk_track.compare.comparison import Comparison

SEVERITY_MARKERS = {"info": "o", "warning": "^", "critical": "X"}
AXIS_LABELS = {"step": "step", "wall_time": "seconds since start", "tokens": "tokens"}


def plot_comparison(comparison: "Comparison", smoothing: float = 0.6, dpi: int = 110) -> bytes:
    """PNG bytes of the comparison's curves (see the module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    metrics = comparison.metrics
    runs = comparison.runset.run_names
    columns = 1 if len(metrics) == 1 else 2 if len(metrics) <= 4 else 3
    rows = math.ceil(len(metrics) / columns)
    figure = Figure(figsize=(6.4 * columns, 3.9 * rows), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    colors = {run: f"C{i % 10}" for i, run in enumerate(runs)}
    alerts = comparison.runset.alerts
    if len(alerts):
        alerts = alerts[alerts["state"].fillna("raised") == "raised"]
    x_name = comparison.settings.get("x", "step")
    for index, metric in enumerate(metrics):
        ax = figure.add_subplot(rows, columns, index + 1)
        for run in runs:
            curve = comparison.curves.get((run, metric))
            if curve is None or not len(curve):
                continue
            smooth = ema(curve.value, smoothing)
            label = f"{run} (baseline)" if run == comparison.baseline else run
            if smoothing > 0:
                ax.plot(curve.x, curve.value, color=colors[run], alpha=0.25, linewidth=0.8)
            ax.plot(curve.x, smooth, color=colors[run], linewidth=1.6, label=label)
            _mark_alerts(ax, alerts, run, metric, metrics, curve, smooth, colors[run])
        ax.set_title(metric, fontsize=11)
        ax.set_xlabel(AXIS_LABELS.get(x_name, x_name))
        ax.grid(True, alpha=0.3)
        if index == 0:
            handles, labels = ax.get_legend_handles_labels()
            used = set(alerts["severity"]) if len(alerts) else set()
            for severity, marker in SEVERITY_MARKERS.items():
                if severity in used:
                    handles.append(Line2D([], [], marker=marker, linestyle="", color="black", label=f"{severity} alert"))
                    labels.append(f"{severity} alert")
            ax.legend(handles, labels, fontsize=8, loc="best")
    if smoothing > 0:
        figure.suptitle(f"EMA smoothing {smoothing:g} (raw curves faint)", fontsize=9, color="#555")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _mark_alerts(ax, alerts, run: str, metric: str, plotted: list[str], curve, smooth: np.ndarray, color: str) -> None:
    if not len(alerts):
        return
    mine = alerts[alerts["run"] == run]
    for alert in mine.itertuples():
        if alert.step is None or alert.step != alert.step:
            continue
        x = float(np.interp(alert.step, curve.step, curve.x))
        marker = SEVERITY_MARKERS.get(alert.severity, "o")
        if alert.metric == metric:
            position = min(int(np.searchsorted(curve.step, alert.step)), len(curve) - 1)
            ax.plot([x], [smooth[position]], marker=marker, markersize=9, color=color,
                    markeredgecolor="black", linestyle="", zorder=5)
        elif alert.metric not in plotted:
            ax.plot([x], [0.02], marker="|", markersize=12, color=color, linestyle="",
                    transform=ax.get_xaxis_transform(), zorder=5)
