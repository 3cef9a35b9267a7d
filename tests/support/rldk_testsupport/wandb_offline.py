"""Helpers for tests against real W&B in offline mode (``tests/conftest.py`` sets
``WANDB_MODE=offline``): an isolated W&B home and readers for what W&B and the event log hold."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from rldk_track.eventlog import read_records
from rldk_track.layout import RunLayout
from rldk_track.backends.wandb_offline import WandbArtifact, WandbOfflineRun, read_offline_run

#: Variables that would point W&B elsewhere than the test's offline run directory.
_WANDB_ENV = (
    "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_DIR", "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_RUN_ID",
    "WANDB_RESUME", "WANDB_NAME", "WANDB_RUN_GROUP", "WANDB_TAGS", "WANDB_JOB_TYPE", "WANDB_NOTES",
)


@pytest.fixture(scope="session")
def wandb_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """W&B offline with its settings, caches and artifact staging in a temporary folder and no
    credentials, so nothing reaches a real account or the user's home."""
    home = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as mp:
        for var in _WANDB_ENV:
            mp.delenv(var, raising=False)
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_CONFIG_DIR", str(home / "config"))
        mp.setenv("WANDB_DATA_DIR", str(home / "data"))
        mp.setenv("WANDB_CACHE_DIR", str(home / "cache"))
        mp.setenv("NETRC", str(home / "netrc"))
        yield home


def wandb_stored(run_dir: str | Path, run_id: str, *, finished: bool = True, timeout: float = 20.0) -> WandbOfflineRun:
    """What W&B stored for ``run_id`` under ``run_dir`` (every resumed segment merged).

    ``run.finish()`` returns before W&B's service has written the file's last records (a few
    milliseconds later), so with ``finished`` this waits until the run's exit record is there.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            stored = read_offline_run(Path(run_dir) / "wandb", run_id)
        except FileNotFoundError:
            if time.monotonic() > deadline:
                raise
        else:
            if not finished or stored.exit_code is not None or time.monotonic() > deadline:
                return stored
        time.sleep(0.02)


def event_log_records(run_dir: str | Path, run_id: str, kind: str) -> list[Any]:
    """The records of one kind in a run's local event log."""
    return [r for _, r in read_records(RunLayout(Path(run_dir), run_id).event_log) if r.kind == kind]


def wandb_table(artifact: WandbArtifact, entry: str) -> dict[str, Any]:
    """A ``wandb.Table`` stored in an artifact, as ``{"columns": [...], "data": [[...]]}``."""
    return json.loads(Path(artifact.entries[f"{entry}.table.json"]).read_text(encoding="utf-8"))
