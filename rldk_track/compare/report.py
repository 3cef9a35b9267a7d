"""A comparison as text for a terminal, Markdown for a PR or notebook, and one self-contained HTML
file (inline CSS and the plot as a base64 PNG: it opens offline and can be logged as an artifact)."""

from __future__ import annotations

import base64
import html
import math
import time
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from rldk_track.compare.comparison import Comparison

#: The sample sets the HTML report shows a run's top samples from, in order of preference; a run
#: with none of them shows the set it logged at the most steps.
SAMPLE_SETS = ("completions", "rewards", "samples")
#: Rows per run in the report's top samples, and the characters kept of each cell.
TOP_SAMPLES = 3
SAMPLE_CELL_CHARS = 300

HEADERS = ("run", "final mean [CI]", "n_eff", "best (step)", "last (step)", "AUC", "reached", "alerts", "vs baseline")


def num(value: Any) -> str:
    """A number in 4 significant digits; blanks for missing."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return "" if math.isnan(value) else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def metric_rows(comparison: "Comparison", metric: str) -> list[tuple[str, ...]]:
    """One row per run for ``metric``: the cells of :data:`HEADERS`."""
    summary = comparison.summary[comparison.summary["metric"] == metric]
    tests = comparison.tests[comparison.tests["metric"] == metric].set_index("run")
    rows = []
    for r in summary.itertuples():
        if r.run == comparison.baseline:
            verdict = "(baseline)"
        elif r.run in tests.index:
            t = tests.loc[r.run]
            numbers = ", ".join(f"{label}{num(t[key])}" for label, key in (("diff ", "difference"), ("g=", "effect_size"))
                                if num(t[key]))  # a constant metric has no effect size: no "g=" then
            verdict = f"{t['verdict']}; {numbers}" if numbers else t["verdict"]
        else:
            verdict = "baseline has no points"
        rows.append((
            str(r.run), f"{num(r.final_mean)} [{num(r.ci_low)}, {num(r.ci_high)}]", f"{r.n_eff:.1f}",
            f"{num(r.best)} ({r.best_step})", f"{num(r.last)} ({r.last_step})", num(r.auc),
            num(r.reached_at) if r.threshold is not None and r.threshold == r.threshold else "",
            str(r.alerts), verdict,
        ))
    return rows


def metric_title(comparison: "Comparison", metric: str) -> str:
    summary = comparison.summary[comparison.summary["metric"] == metric]
    goal = summary["goal"].iloc[0] if len(summary) else "max"
    settings = comparison.settings
    parts = [f"{'lower' if goal == 'min' else 'higher'} is better",
             f"final window {settings['last']}", f"{int(settings['confidence'] * 100)}% CI"]
    if len(summary):
        parts.append(f"AUC over {settings['x']} {num(summary['auc_from'].iloc[0])}..{num(summary['auc_to'].iloc[0])}")
    threshold = settings["thresholds"].get(metric)
    if threshold is not None:
        parts.append(f"reached = first {settings['x']} where the smoothed curve hits {num(float(threshold))}")
    return f"{metric} ({'; '.join(parts)})"


def _grid(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def render_text(comparison: "Comparison") -> str:
    blocks = [_runs_line(comparison)]
    for metric in comparison.metrics:
        blocks.append(metric_title(comparison, metric) + "\n" + _grid(HEADERS, metric_rows(comparison, metric)))
    blocks.append(_missing_line(comparison))
    return "\n\n".join(b for b in blocks if b) + "\n"


def render_markdown(comparison: "Comparison") -> str:
    def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
        cell = lambda s: s.replace("|", "\\|")  # noqa: E731
        out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
        return "\n".join(out)

    blocks = ["## Run comparison", _runs_line(comparison)]
    for metric in comparison.metrics:
        blocks.append(f"### {metric_title(comparison, metric)}\n\n" + table(HEADERS, metric_rows(comparison, metric)))
    blocks.append(_missing_line(comparison))
    blocks.append(_method_note(comparison))
    return "\n\n".join(b for b in blocks if b) + "\n"


def _runs_line(comparison: "Comparison") -> str:
    runs = comparison.runset.runs
    parts = [f"{name} ({runs.at[name, 'backend']}, {runs.at[name, 'status']}, {runs.at[name, 'alerts']} alerts)"
             for name in runs.index]
    return f"runs: {', '.join(parts)}; baseline: {comparison.baseline}"


def _missing_line(comparison: "Comparison") -> str:
    missing = comparison.missing()
    return "not logged: " + ", ".join(f"{m} in {r}" for r, m in missing) if missing else ""


def _method_note(comparison: "Comparison") -> str:
    s = comparison.settings
    return (
        f"Final-window means with moving-block bootstrap CIs ({s['resamples']} resamples). n_eff is the "
        "window's effective sample size from its lag-1 autocorrelation. A difference is claimed only when "
        f"both windows have n_eff >= {s['min_effective_points']}, Welch's t-test on n_eff gives p < {s['alpha']} "
        "(the p shown) and the Mann-Whitney U test agrees; g is Hedges' effect size."
    )


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.sig{font-weight:600} .muted{color:#777} img{max-width:100%}
.samples td{white-space:pre-wrap;max-width:40em;font-family:ui-monospace,monospace;font-size:13px}
.critical{color:#b00020} .warning{color:#b26a00} .info{color:#555}
"""


def render_html(comparison: "Comparison", plot: bool = True) -> str:
    esc = html.escape
    runs = comparison.runset.runs
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>rldk_track run comparison: {esc(', '.join(runs.index))}</title><style>{_CSS}</style></head><body>",
        "<h1>Run comparison</h1>",
        f'<p class="muted">Generated {esc(time.strftime("%Y-%m-%d %H:%M:%S"))} by rldk_track. '
        f"Baseline: <b>{esc(comparison.baseline)}</b>.</p>",
        "<h2>Runs</h2>",
        _html_table(
            ("run", "backend", "status", "project", "points", "alerts", "source"),
            [(name, runs.at[name, "backend"], runs.at[name, "status"], runs.at[name, "project"],
              num(runs.at[name, "points"]), num(runs.at[name, "alerts"]), runs.at[name, "source"])
             for name in runs.index],
        ),
    ]
    if plot:
        png = base64.b64encode(comparison.plot()).decode("ascii")
        parts += ["<h2>Curves</h2>", f'<img alt="metric curves" src="data:image/png;base64,{png}">']
    for metric in comparison.metrics:
        parts.append(f"<h2>{esc(metric_title(comparison, metric))}</h2>")
        parts.append(_html_table(HEADERS, metric_rows(comparison, metric), significant=_significant(comparison, metric)))
    missing = _missing_line(comparison)
    if missing:
        parts.append(f'<p class="muted">{esc(missing)}</p>')
    samples = _top_samples_html(comparison)
    if samples:
        parts += ["<h2>Top samples</h2>", *samples]
    alerts = comparison.runset.alerts
    if len(alerts):
        parts.append("<h2>Alerts</h2>")
        parts.append(_html_table(
            ("run", "step", "rule", "severity", "state", "metric", "value", "message"),
            [(a.run, num(a.step), a.rule, a.severity, a.state, a.metric, num(a.value), a.message)
             for a in alerts.itertuples()],
            severity_column=3,
        ))
    parts.append(f"<h2>Method</h2><p>{esc(_method_note(comparison))}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def top_samples(samples: Any, run: str, n: int = TOP_SAMPLES) -> tuple[str, int, list[str], list[list[Any]]] | None:
    """``run``'s ``n`` highest-reward rows at the last step of its sample set (:data:`SAMPLE_SETS`),
    as ``(set name, step, columns, rows)``; the first rows when the set has no ``reward``. None
    when the run has no samples. ``samples`` is a :class:`~rldk_track.readers.runset.RunSet`'s."""
    from rldk_track.samples import finite_or_none

    mine = samples[samples["run"] == run]
    if not len(mine):
        return None
    names = list(mine["name"].unique())
    name = next((s for s in SAMPLE_SETS if s in names), None)
    if name is None:
        name = max(names, key=lambda candidate: mine.loc[mine["name"] == candidate, "step"].nunique())
    chosen = mine[mine["name"] == name]
    step = int(chosen["step"].max())
    table = chosen[chosen["step"] == step].drop(columns=["run", "name", "step", "row"]).dropna(axis=1, how="all")
    columns = [str(c) for c in table.columns]
    rows = table.values.tolist()
    if "reward" in columns:
        at = columns.index("reward")
        rows.sort(key=lambda row: -(reward if (reward := finite_or_none(row[at])) is not None else -math.inf))
    return name, step, columns, rows[:n]


def _top_samples_html(comparison: "Comparison") -> list[str]:
    esc = html.escape
    samples = comparison.runset.samples
    out = []
    for run in comparison.runset.runs.index:
        top = top_samples(samples, run) if len(samples) else None
        if top is None:
            continue
        name, step, columns, rows = top
        order = "highest reward first" if "reward" in columns else "first rows"
        out.append(f"<h3>{esc(str(run))}: {esc(name)} at step {step} ({order})</h3>")
        out.append('<div class="samples">' + _html_table(columns, [[_cell(c) for c in row] for row in rows]) + "</div>")
    return out


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = num(value) if isinstance(value, float) else str(value)
    return text if len(text) <= SAMPLE_CELL_CHARS else text[:SAMPLE_CELL_CHARS] + f"… ({len(text)} characters)"


def _significant(comparison: "Comparison", metric: str) -> set[str]:
    tests = comparison.tests
    return set(tests[(tests["metric"] == metric) & tests["significant"].astype(bool)]["run"])


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], significant: set[str] = frozenset(),
                severity_column: int | None = None) -> str:
    esc = html.escape
    out = ["<table><thead><tr>", *(f"<th>{esc(h)}</th>" for h in headers), "</tr></thead><tbody>"]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            missing = cell is None or (isinstance(cell, float) and math.isnan(cell))  # pandas' NaN: not "nan"
            text = esc("" if missing else str(cell))
            css = []
            if i == len(row) - 1 and row[0] in significant:
                css.append("sig")
            if severity_column == i:
                css.append(text)
            cells.append(f'<td class="{" ".join(css)}">{text}</td>' if css else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)
