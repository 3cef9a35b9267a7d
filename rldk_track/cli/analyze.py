"""``rldk-track analyze SOURCE``: run the analyzers over finished runs from any tracker."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from rldk_track.cli.common import add_format_arguments, add_source_arguments, evidence_line, fail, load

if TYPE_CHECKING:
    from rldk_track.readers.runset import RunSet

EPILOG = """\
The run's metrics are replayed step by step through the same analyzers a live run uses
(init(analyzers="default")). Alerts the run already has are not reported again, but they
count for the exit code: a run is judged by every alert it holds, new or not.

--write adds the new alerts (and the analyzers' summaries with them) to the run where it
was read from; a run with no new alerts is left as it is:
  event log     appended (with the run's end status), then synced to the run's trackers
  MLflow        rldk.alert.<rule> tags, rldk.health, alerts/count and rldk/alerts.jsonl
  TensorBoard   alerts/<rule> text summaries and rldk/alerts.jsonl in the run directory
  W&B           not supported: analyze the run's event log instead (it syncs to W&B)

An alert of a rule that has samples to show carries evidence rows from the run's sample sets
(the text output says how many, of which set and step; --json has them as "evidence", the
alert line's JSON form, or null; `rldk-track samples SOURCE --alert RULE` prints them).

examples:
  rldk-track analyze ./rldk_runs
  rldk-track analyze mlflow://rlhf/grpo-lr3e-6 --write
  rldk-track analyze ./rldk_runs/tensorboard --analyzers kl_spike,entropy_collapse --json

exit codes: 0 no run holds or raises a warning or critical alert; 1 some run does (already,
            or newly found), or a write-back failed; 2 bad input.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="run the health analyzers over finished runs (any tracker), print or write back the alerts",
        description="Replay finished runs through rldk_track's analyzers (KL spikes, entropy collapse, "
        "reward hacking, NaN, ...) and report the alerts; optionally write them back to the run.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_arguments(p, "runs to analyze (same sources as `compare`)")
    p.add_argument("--analyzers", default="default", metavar="SPEC",
                   help="'default' (every rule) or rule names, comma-separated (e.g. kl_spike,nonfinite)")
    p.add_argument("--write", action="store_true", help="add the new alerts to the runs (see below)")
    p.add_argument("--no-sync", action="store_true", help="with --write on an event log: append only, do not sync")
    add_format_arguments(p, what="the alerts (json: one JSON line per new alert, with its evidence rows)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        runset = load(args)
        from rldk_track.analyzers import build_observers

        build_observers(args.analyzers)  # fail fast on an unknown rule name
    except (ValueError, KeyError, LookupError, FileNotFoundError, TypeError) as exc:
        return fail(exc)
    from rldk_track.posthoc import analyze_run
    from rldk_track.posthoc import WriteBackError, write_back
    from rldk_track.readers.progress import progress_bar
    from rldk_track.records import Alert

    notable = False
    failed = False
    names = runset.run_names
    held = concerns_held(runset)
    for name in progress_bar(names, len(names), "analyzing", None if not args.no_progress else False):
        records = analyze_run(runset, name, args.analyzers)
        alerts = [r for r in records if isinstance(r, Alert)]
        new = sorted({a.rule for a in alerts if a.severity in CONCERNS and a.state == "raised"})
        notable = notable or bool(new) or bool(held.get(name))
        _print(name, alerts, args.format == "json", held.get(name, []))
        if args.write and alerts:  # the analyzers' summaries go along; alone they are no news
            try:
                result = write_back(runset.runs.loc[name].to_dict(), records, sync=not args.no_sync)
            except (WriteBackError, OSError) as exc:
                print(f"  not written back: {exc}", file=sys.stderr)
                failed = True
                continue
            synced = f"; synced: {', '.join(result.synced)}" if result.synced else ""
            refused = f" ({result.refused} refused by the tracker)" if result.refused else ""
            print(f"  wrote {result.records} records to {result.where}{refused}{synced}", file=sys.stderr)
    return 1 if notable or failed else 0


#: The severities that make a run's exit code 1.
CONCERNS = ("warning", "critical")


def concerns_held(runset: "RunSet") -> dict[str, list[str]]:
    """For each run, the warning/critical alerts it already holds (raised at some step, cleared
    later or not), as ``"rule (severity)"``, in the order first raised."""
    alerts = runset.alerts
    if alerts.empty:
        return {}
    raised = alerts[alerts["severity"].isin(CONCERNS) & (alerts["state"] == "raised")]
    out: dict[str, list[str]] = {}
    for row in raised.itertuples():
        label = f"{row.rule} ({row.severity})"
        if label not in out.setdefault(str(row.run), []):
            out[str(row.run)].append(label)
    return out


def _print(run: str, alerts: list, as_json: bool, held: list[str]) -> None:
    if as_json:
        for a in alerts:
            print(json.dumps({"run": run, "step": a.step, "rule": a.rule, "severity": a.severity, "state": a.state,
                              "metric": a.metric, "value": a.value, "threshold": a.threshold,
                              "message": a.message, "action": a.action,
                              "evidence": a.evidence.to_json() if a.evidence is not None else None}, default=str))
        return
    already = f"; it already holds {', '.join(held)}" if held else ""
    if not alerts:
        print(f"{run}: no new alerts{already}")
        return
    print(f"{run}: {len(alerts)} new alert{'s' if len(alerts) != 1 else ''}{already}")
    for a in alerts:
        where = f" {a.metric}={a.value:.4g}" if a.metric and a.value is not None else ""
        print(f"  step {a.step:>6}  {a.severity:<8} {a.state:<7} {a.rule:<20}{where}  {a.message}")
        if a.evidence is not None:
            print(f"                {evidence_line(a.evidence)}")
