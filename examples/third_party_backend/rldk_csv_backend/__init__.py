"""An example third-party rldk_track backend: every metric point as a row of a CSV file, and the
run's end status as a last row. A stand-in for your tracker's client calls.

Installed, it is found by name through the ``rldk_track.backends`` entry-point group
(``pyproject.toml``), with no import or registration in the training script::

    rldk_track.init(backend="csv", options={"csv": {"folder": "metrics_csv"}})
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rldk_track.backends import Backend, Resume
from rldk_track.records import Metrics, Record, RunEnd

COLUMNS = ("step", "metric", "value", "wall_time")


class CsvBackend(Backend):
    """``<folder>/<run_id>.csv`` with columns step, metric, value, wall_time; the status row has
    metric ``status`` and the status in ``value``."""

    name = "csv"
    accepted_options = {"folder": "where the CSV files go (default <run dir>/csv)"}
    supports = frozenset({"metrics", "run_end"})

    def open(self, state: dict[str, Any] | None, resume: Resume) -> dict[str, Any]:
        folder = Path(self.options.get("folder") or self.run.dir / "csv")
        folder.mkdir(parents=True, exist_ok=True)
        self.path = Path(state["path"]) if state else folder / f"{self.run.run_id}.csv"
        self.done_seq = resume.delivered_seq  # rows of records an earlier process delivered are in the file
        if not self.path.exists():
            self.path.write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
        return {"path": str(self.path)}  # kept with the dispatcher's cursor; a resumed run gets it back

    def write(self, records: Iterable[Record]) -> None:
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            rows = csv.writer(f)
            for record in records:
                if record.seq <= self.done_seq:  # a batch retried after a failure adds nothing twice
                    continue
                if isinstance(record, Metrics):
                    for metric, value in record.values.items():
                        rows.writerow((record.step, metric, repr(float(value)), record.wall_time))
                elif isinstance(record, RunEnd):
                    rows.writerow((-1, "status", record.status, record.wall_time))
                self.done_seq = record.seq

    def describe(self) -> str:
        return f"csv files in {self.options.get('folder') or self.run.dir / 'csv'}"
