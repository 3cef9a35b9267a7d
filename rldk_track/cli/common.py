"""What the commands share: the read side's sources (compare, analyze), the run directory
(doctor, ui), errors, output."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from rldk_track.readers.runset import RunSet
    from rldk_track.records import Evidence

BAD_INPUT = 2


def add_source_arguments(p: argparse.ArgumentParser, sources_help: str) -> None:
    """``SOURCE...``, ``--run``, ``--tracking-uri`` and ``--no-progress``, read by :func:`load`."""
    p.add_argument("sources", nargs="+", metavar="SOURCE", help=sources_help)
    p.add_argument("--run", action="append", metavar="RUN", help="only these runs (repeatable; names as listed)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for mlflow:// sources (default: MLFLOW_TRACKING_URI)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def load(args: argparse.Namespace) -> "RunSet":
    """The runs of ``args.sources`` (only ``args.run`` when given); progress bars on a terminal
    unless ``--no-progress``."""
    # MLflow draws its own bar for every artifact download (the reader fetches a few small files),
    # and TensorBoard's loader reports each event file it opens at INFO.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("tensorboard").setLevel(logging.WARNING)
    from rldk_track.readers import load_runs

    runset = load_runs(list(args.sources), tracking_uri=args.tracking_uri, progress=False if args.no_progress else None)
    return runset.select(runs=args.run) if args.run else runset


def resolve_dir(arg: str | None) -> Path:
    """The run directory a command looks at: ``--dir``, else ``RLDK_TRACK_DIR``, else the default
    that ``rldk_track.init`` writes to."""
    from rldk_track.layout import resolve_run_dir

    return resolve_run_dir(arg)


def evidence_line(evidence: "Evidence") -> str:
    """How a command shows that an alert carries evidence rows (demo, analyze): how many, of which
    sample set, at which step, by which measure."""
    return f"evidence: {len(evidence.rows)} rows of {evidence.name!r} at step {evidence.step}, {evidence.by} first"


def fail(exc: BaseException) -> int:
    """Report a bad input on stderr (no traceback) and return exit code 2."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    print(f"rldk-track: error: {message}", file=sys.stderr)
    return BAD_INPUT


def add_format_arguments(p: argparse.ArgumentParser, formats: tuple[str, ...] = ("text", "json"),
                         what: str = "the output") -> None:
    """``--format`` (first of ``formats`` by default) and ``--json`` (the same as ``--format json``),
    spelled alike in every command."""
    p.add_argument("--format", choices=formats, default=formats[0],
                   help=f"format of {what} (default: {formats[0]})")
    p.add_argument("--json", dest="format", action="store_const", const="json", help="the same as --format json")


def add_output_argument(p: argparse.ArgumentParser, what: str = "the output") -> None:
    """``-o/--output FILE`` (``--out`` kept as an alias)."""
    p.add_argument("-o", "--output", "--out", dest="output", metavar="FILE", help=f"write {what} here instead of stdout")


def backend_name(value: str) -> str:
    """An argparse ``type``: a backend name ``init`` accepts, or a one-line error with the
    closest name (``mlfow`` -> ``mlflow``) and every valid one."""
    import difflib

    from rldk_track import backends, eventlog

    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    valid = [eventlog.NAME, *backends.available()]  # "jsonl": the event log, always on
    for name in names:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise argparse.ArgumentTypeError(f"unknown backend {name!r}; {hint}choose from {', '.join(valid)}")
    return ",".join(names)


def write_frame(frame: "pd.DataFrame", path: Path) -> None:
    """``frame`` to ``path`` as Parquet (``.parquet``), JSON lines (``.jsonl``) or CSV (else)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":  # the stdlib writes floats exactly (pandas rounds to 15 digits)
        import json

        with open(path, "w", encoding="utf-8") as out:
            for row in frame.to_dict(orient="records"):
                out.write(json.dumps(row, default=str) + "\n")
    else:
        frame.to_csv(path, index=False)


def write_output(text: str, path: str | None) -> None:
    """``text`` to ``path`` (reported on stderr), or to stdout."""
    if path:
        Path(path).write_text(text, encoding="utf-8")
        print(f"written to {path}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
