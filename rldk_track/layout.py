"""Where a run's local files live under the run directory (``dir=``, default ``./rldk_runs``).

```
<dir>/events/<run_id>.jsonl                 the event log (write-ahead log), one record a line
<dir>/events/<run_id>.rank<k>.jsonl         per-rank logs (``per_rank=True``) on ranks other than 0
<dir>/events/<run_id>.<backend>.cursor.json how far each tracker has received the log
<dir>/events/<run_id>.<backend>.rejected.jsonl  records a tracker refused, kept for inspection
<dir>/events/<run_id>.lock                  held (flock) by the process recording the run
<dir>/artifacts/<run_id>/<name>             artifacts staged before they reach the trackers
<dir>/events/<run_id>.launcher-status      a failed OpenRLHF driver's status, for the trainer actor's run
<dir>/pins/...                              checkpoint files hard-linked for health analysis
```
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = "./rldk_runs"


def resolve_run_dir(dir: str | os.PathLike[str] | None = None) -> Path:
    """The run directory: ``dir``, else ``RLDK_TRACK_DIR``, else ``./rldk_runs`` (absolute)."""
    return Path(dir or os.environ.get("RLDK_TRACK_DIR") or DEFAULT_DIR).absolute()


@dataclass(frozen=True)
class RunLayout:
    dir: Path
    run_id: str
    rank_suffix: str = ""

    @property
    def events_dir(self) -> Path:
        return self.dir / "events"

    @property
    def event_log(self) -> Path:
        return self.events_dir / f"{self.run_id}{self.rank_suffix}.jsonl"

    def cursor(self, backend: str) -> Path:
        return self.events_dir / f"{self.run_id}{self.rank_suffix}.{backend}.cursor.json"

    @property
    def lock(self) -> Path:
        """Locked by the one process that records the run (:mod:`rldk_track.runlock`)."""
        return self.events_dir / f"{self.run_id}{self.rank_suffix}.lock"

    def rejected(self, backend: str) -> Path:
        return self.events_dir / f"{self.run_id}{self.rank_suffix}.{backend}.rejected.jsonl"

    @property
    def pins_dir(self) -> Path:
        """Checkpoint files hard-linked here stay readable after the trainer deletes them."""
        return self.dir / "pins"

    @property
    def artifacts_dir(self) -> Path:
        return self.dir / "artifacts" / f"{self.run_id}{self.rank_suffix}"

    @classmethod
    def from_event_log(cls, path: Path) -> "RunLayout":
        """The layout of the run whose event log is ``path``."""
        stem = path.name[: -len(".jsonl")]
        run_id, _, rank = stem.partition(".rank")
        return cls(path.parent.parent, run_id, f".rank{rank}" if rank else "")


def event_logs(dir: Path) -> list[Path]:
    """Every event log under a run directory (or the file itself), oldest first."""
    if dir.is_file():
        return [dir]
    events = dir / "events" if (dir / "events").is_dir() else dir
    logs = [p for p in events.glob("*.jsonl") if ".rejected" not in p.name]
    return sorted(logs, key=lambda p: p.stat().st_mtime)
