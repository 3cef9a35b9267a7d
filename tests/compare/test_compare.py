"""``compare()`` on runs built in memory: what each summary and test column holds, and the outputs."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pandas as pd
import pytest

import rldk_track.compare as compare_module
from rldk_track.compare import compare
from rldk_track.readers.rundata import RunData
from rldk_track.readers.runset import build_runset


def make_run(name: str, reward_offset: float, steps: int = 100, seed: int = 0, alerts: bool = False) -> RunData:
    rng = np.random.default_rng(seed)
    run = RunData(name=name, source=f"memory:{name}", backend="jsonl", run_id=name, status="success")
    for step in range(steps):
        run.add_points(step, {
            "reward/mean": reward_offset + 0.005 * step + float(rng.normal(0, 0.05)),
            "kl/mean": 0.01 + 0.0001 * step,
            "tokens/total": 100.0 * (step + 1),
        }, 1_000.0 + 2.0 * step)
    if alerts:
        run.add_alert(step=40, rule="kl_spike", severity="warning", metric="kl/mean", value=0.02, message="spike")
        run.add_alert(step=45, rule="kl_spike", severity="warning", metric="kl/mean", state="cleared", message="ok")
        run.add_alert(step=60, rule="nonfinite", severity="critical", metric="loss/total", message="nan")
    return run


@pytest.fixture
def runs():
    return build_runset([make_run("base", 0.0, seed=1), make_run("better", 1.0, seed=2, alerts=True)])


def test_summary_holds_final_window_mean_best_and_last(runs):
    result = compare(runs, metrics=["reward/mean"], last="20%")
    row = result.summary.set_index("run").loc["better"]
    values = runs.series("better", "reward/mean")["value"].to_numpy()
    assert row["window"] == 20
    assert row["final_mean"] == pytest.approx(values[-20:].mean())
    assert row["ci_low"] < row["final_mean"] < row["ci_high"]
    assert row["best"] == pytest.approx(values.max())
    assert row["best_step"] == int(values.argmax())
    assert (row["last"], row["last_step"]) == (pytest.approx(values[-1]), 99)


def test_best_is_the_minimum_for_metrics_that_should_go_down(runs):
    result = compare(runs, metrics=["kl/mean"])
    row = result.summary.set_index("run").loc["base"]
    assert row["goal"] == "min" and row["best"] == pytest.approx(0.01) and row["best_step"] == 0


def test_goal_can_be_overridden(runs):
    result = compare(runs, metrics=["kl/mean"], goals={"kl/mean": "max"})
    assert result.summary.set_index("run").loc["base", "best_step"] == 99


def test_area_under_the_curve_uses_the_steps_all_runs_share():
    short = make_run("short", 0.0, steps=50, seed=3)
    result = compare(build_runset([make_run("long", 0.0, seed=3), short]), metrics=["kl/mean"])
    rows = result.summary.set_index("run")
    x = np.arange(50.0)
    expected = np.trapezoid(0.01 + 0.0001 * x, x)
    assert rows.loc["long", "auc"] == pytest.approx(expected)
    assert rows.loc["short", "auc"] == pytest.approx(expected)
    assert (rows.loc["long", "auc_from"], rows.loc["long", "auc_to"]) == (0, 49)


def test_threshold_is_reached_on_the_smoothed_curve(runs):
    result = compare(runs, metrics=["reward/mean"], thresholds={"reward/mean": 1.5}, smoothing=0.0)
    rows = result.summary.set_index("run")
    better = runs.series("better", "reward/mean")
    assert rows.loc["better", "reached_at"] == better["step"][better["value"] >= 1.5].iloc[0]
    assert pd.isna(rows.loc["base", "reached_at"])


def test_alerts_are_counted_per_run_and_metric(runs):
    result = compare(runs, metrics=["kl/mean", "reward/mean"])
    rows = result.summary.set_index(["run", "metric"])
    assert rows.loc[("better", "kl/mean"), "alerts"] == 1  # the cleared one is not another alert
    assert rows.loc[("better", "reward/mean"), "alerts"] == 0
    assert runs.runs.loc["better", "alerts"] == 2 and runs.runs.loc["better", "health"] == "critical"


def test_info_reports_are_not_counted_as_alerts():
    """A healthy run's end-of-run reports (severity info) showed as '2 alerts' in compare."""
    run = make_run("healthy", 0.0)
    run.add_alert(step=99, rule="reward_reliability/report", severity="info", metric="reward/mean", message="report")
    run.add_alert(step=99, rule="trends", severity="info", message="trends")
    runs = build_runset([run, make_run("other", 0.5, seed=3)])
    assert runs.runs.loc["healthy", "alerts"] == 0 and runs.runs.loc["healthy", "health"] == "ok"
    assert compare(runs, metrics=["reward/mean"]).summary.set_index("run").loc["healthy", "alerts"] == 0


def test_runs_are_tested_against_the_baseline(runs):
    result = compare(runs, metrics=["reward/mean"], baseline="base", last=50)
    test = result.tests.set_index("run").loc["better"]
    assert test["baseline"] == "base" and test["n"] == 50 and test["n_baseline"] == 50
    assert test["difference"] == pytest.approx(1.0, abs=0.05)
    assert test["direction"] == "higher" and test["effect_size"] > 5
    assert result.verdicts[("better", "reward/mean")].startswith("better higher, p<0.001")


def test_a_metric_one_run_lacks_is_reported_missing():
    other = RunData(name="other", source="memory", backend="jsonl")
    other.add_points(0, {"kl/mean": 0.1}, 0.0)
    other.add_points(1, {"kl/mean": 0.2}, 1.0)
    result = compare(build_runset([make_run("base", 0.0), other]), metrics=["reward/mean", "kl/mean"])
    assert result.missing() == [("other", "reward/mean")]


def test_default_metrics_are_the_canonical_ones_present(runs):
    assert compare(runs).metrics == ["reward/mean", "kl/mean"]


def test_unknown_metric_and_baseline_fail_with_the_choices(runs):
    with pytest.raises(KeyError, match="reward/mean"):
        compare(runs, metrics=["rewrad"])


def test_a_metric_is_found_by_its_framework_name(runs):
    assert compare(runs, metrics=["reward", "kl"]).metrics == ["reward/mean", "kl/mean"]
    with pytest.raises(KeyError, match="base, better"):
        compare(runs, baseline="nope")


def test_wall_time_axis_is_seconds_since_each_runs_start(runs):
    result = compare(runs, metrics=["kl/mean"], x="wall_time")
    curve = result.curves[("base", "kl/mean")]
    np.testing.assert_allclose(curve.x, 2.0 * curve.step)


def test_tokens_axis_is_the_token_count_at_each_step(runs):
    result = compare(runs, metrics=["kl/mean"], x="tokens", thresholds={"kl/mean": 0.0105}, goals={"kl/mean": "max"},
                     smoothing=0.0)
    curve = result.curves[("base", "kl/mean")]
    np.testing.assert_allclose(curve.x, 100.0 * (curve.step + 1))
    assert result.summary.set_index("run").loc["base", "reached_at"] == pytest.approx(600.0)  # step 5


def test_a_bare_long_frame_can_be_compared():
    frame = pd.DataFrame({
        "run": ["a"] * 30 + ["b"] * 30, "step": list(range(30)) * 2,
        "metric": "reward/mean", "value": np.r_[np.zeros(30), np.ones(30)],
    })
    result = compare(frame, baseline="a")
    assert list(result.summary["final_mean"]) == [0.0, 1.0]
    assert result.verdicts[("b", "reward/mean")] == "b higher (both constant)"


def test_the_module_itself_is_callable(runs):
    result = compare_module(runs, metrics=["kl/mean"])
    assert result.metrics == ["kl/mean"]


def test_json_output_is_strict_json_with_every_row(runs):
    result = compare(runs, metrics=["reward/mean", "kl/mean"], thresholds={"reward/mean": 99})
    data = json.loads(result.to_json())
    assert data["baseline"] == "base" and len(data["summary"]) == 4 and len(data["tests"]) == 2
    assert data["summary"][0]["reached_at"] is None


def test_plot_is_a_png_with_one_panel_per_metric(runs, tmp_path):
    png = compare(runs, metrics=["reward/mean", "kl/mean", "tokens/total"]).plot(tmp_path / "c.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "c.png").read_bytes() == png
    width, height = struct.unpack(">II", png[16:24])
    assert width > height  # 3 panels in a 2-column grid: 2 rows of wide panels


def test_html_report_is_self_contained(runs):
    html = compare(runs, metrics=["reward/mean", "kl/mean"]).to_html()
    assert html.startswith("<!DOCTYPE html>")
    assert "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "better higher" in html and "kl_spike" in html


def test_text_and_markdown_tables_list_every_run_and_verdict(runs):
    result = compare(runs, metrics=["reward/mean"])
    for text in (result.to_text(), result.to_markdown()):
        assert "base" in text and "(baseline)" in text and "better higher, p<0.001" in text
    assert result.to_markdown().count("| better |") == 1


def test_report_can_be_logged_to_a_run(runs, tmp_path):
    import rldk_track
    from rldk_track.readers import load_runs

    run = rldk_track.init(dir=tmp_path, run_name="reporter")
    compare(runs, metrics=["reward/mean"]).log_to(run)
    run.finish()
    stored = tmp_path / "artifacts" / run.id / "rldk" / "compare.html"
    assert stored.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert load_runs(tmp_path).runs.loc["reporter", "status"] == "success"


def test_nan_points_do_not_break_the_summary():
    run = RunData(name="nan", source="memory", backend="jsonl")
    for step in range(20):
        run.add_points(step, {"reward/mean": math.nan if step == 18 else float(step)}, float(step))
    row = compare(build_runset([run]), metrics=["reward/mean"]).summary.iloc[0]
    assert row["best"] == 19.0 and row["window"] == 3  # the last 20% (4 points) less the NaN
    assert row["final_mean"] == pytest.approx((16 + 17 + 19) / 3)


def test_a_constant_metric_shows_no_empty_effect_size_and_p_values_read_plainly():
    runs = []
    for name, offset in (("base", 0.0), ("other", 1.0)):
        run = RunData(name=name, source=f"memory:{name}", backend="jsonl", run_id=name, status="success")
        for step in range(100):
            run.add_points(step, {"const": 1.0, "reward/mean": offset + 0.01 * (step % 7)}, float(step))
        runs.append(run)
    text = compare(build_runset(runs), metrics=["const", "reward/mean"]).to_text()
    constant = text.split("reward/mean (")[0]
    assert constant.rstrip().endswith("diff 0") and "g=" not in constant  # no "g=" with no value after it
    assert "p=<" not in text and "other higher, p<0.001" in text


def test_the_html_alert_table_leaves_a_missing_metric_blank_not_nan():
    extra = make_run("third", 0.5, seed=3)
    extra.add_alert(step=10, rule="custom", severity="warning")
    html = compare(build_runset([make_run("base", 0.0, seed=1), extra]), metrics=["reward/mean"]).to_html()
    alerts = html.split("<h2>Alerts</h2>", 1)[1].split("</table>", 1)[0]
    assert "custom" in alerts and ">nan<" not in alerts and "None" not in alerts


def test_the_html_report_shows_each_runs_top_samples_at_its_last_sampled_step_escaped():
    base, other = make_run("base", 0.0, seed=1), make_run("better", 1.0, seed=2)
    columns = ["prompt", "completion", "reward"]
    base.add_samples(10, "completions", columns, [["p", "early", 9.0]])
    base.add_samples(30, "completions", columns, [["p", "low", 0.1], ["p", "<script>alert(1)</script>", 0.9],
                                                  ["p", "none", None], ["p", "x" * 1000, 0.5], ["p", "mid", 0.3]])
    base.add_samples(30, "evidence/reward_hacking", columns, [["p", "evidence row", 99.0]])
    other.add_samples(20, "frame", ["text"], [["first"], ["second"], ["third"], ["fourth"]])
    html = compare(build_runset([base, other]), metrics=["reward/mean"]).to_html()

    section = html.split("<h2>Top samples</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in section
    base_part, other_part = section.split("<h3>better: frame at step 20 (first rows)</h3>")
    assert "<h3>base: completions at step 30 (highest reward first)</h3>" in base_part
    shown = [cell for cell in ("&lt;script&gt;", "x" * 300 + "… (1000 characters)", "mid", "low", "early", "evidence row")
             if cell in base_part]
    assert shown == ["&lt;script&gt;", "x" * 300 + "… (1000 characters)", "mid"]  # the three best, in order
    assert base_part.index("&lt;script&gt;") < base_part.index("x" * 300) < base_part.index("mid")
    assert "first" in other_part and "third" in other_part and "fourth" not in other_part
