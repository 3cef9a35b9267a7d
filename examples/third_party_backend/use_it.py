"""Record a run with the third-party ``csv`` backend, by name, next to the local event log.

    pip install ./examples/third_party_backend      # once: registers the "csv" entry point
    python examples/third_party_backend/use_it.py --folder metrics_csv
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import rldk_track


def record(folder: str | Path, dir: str | Path | None = None, steps: int = 5) -> str:
    """A short run into ``backend="csv"`` (found through its entry point); returns the run id."""
    with rldk_track.init(backend="csv", options={"csv": {"folder": str(folder)}}, dir=dir,
                         run_name="csv-example") as run:
        for step in range(1, steps + 1):
            run.log({"reward/mean": step / steps, "kl/mean": 0.01 * step}, step=step)
        return run.id


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default="metrics_csv")
    parser.add_argument("--dir", default=None, help="run directory for the event log (default ./rldk_runs)")
    args = parser.parse_args(argv)
    run_id = record(args.folder, args.dir)
    print(f"run {run_id}: {Path(args.folder) / (run_id + '.csv')}")


if __name__ == "__main__":
    main()
