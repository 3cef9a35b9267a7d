"""``rldk-track sync DIR --to mlflow``: deliver event logs that trackers have not fully received."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from rldk_track.cli.common import add_format_arguments, backend_name


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sync",
        help="replay local event logs into trackers (after a crash, an outage or an offline run)",
        description="Deliver what each tracker has not received yet. Resumable and idempotent: "
        "a second run adds nothing.",
    )
    p.add_argument("source", help="run directory (e.g. ./rldk_runs) or one event log .jsonl")
    p.add_argument("--to", action="append", metavar="BACKEND", type=backend_name,
                   help="backend to deliver to (repeatable; default: the run's own backends)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (overrides the one the run used)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait per run (default 600)")
    p.add_argument("--force", action="store_true", help="also sync runs whose process is still running")
    p.add_argument("--from-start", action="store_true",
                   help="replay whole logs, ignoring what was delivered before (e.g. into another server)")
    add_format_arguments(p, what="the results")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rldk_track.sync import sync

    options = {"mlflow": {"tracking_uri": args.tracking_uri}} if args.tracking_uri else None
    to = [name for names in args.to for name in names.split(",")] if args.to else None
    # --json: stdout is the JSON alone (`| jq`); what tracker libraries print meanwhile (MLflow's
    # "View run ... at" lines, from its worker threads too) goes to stderr
    quiet = contextlib.redirect_stdout(sys.stderr) if args.format == "json" else contextlib.nullcontext()
    with quiet:
        results = sync(args.source, to=to, options=options, timeout=args.timeout, force=args.force,
                       from_start=args.from_start)
    if args.format == "json":
        print(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        if not results:
            print(f"nothing to sync under {args.source}")
        for r in results:
            state = "done" if r.complete else "INCOMPLETE"
            extra = f" ({r.skipped})" if r.skipped else ""
            print(f"{r.run_id} -> {r.backend}: {r.delivered} records, {state}{extra}")
    return 0 if all(r.complete for r in results) else 1
