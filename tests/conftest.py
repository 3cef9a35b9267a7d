"""Test-wide settings: no network, offline W&B, and the shared fixtures in
``tests/support/rldk_testsupport/`` (every module there is loaded as a pytest plugin)."""

from __future__ import annotations

import atexit
import os
import pkgutil
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.pop("RLDK_TRACK_BACKENDS", None)
# trackio reads its store folder once, at import: every test (and child process) gets this one.
os.environ["TRACKIO_DIR"] = tempfile.mkdtemp(prefix="rldk-test-trackio-")
atexit.register(shutil.rmtree, os.environ["TRACKIO_DIR"], True)
os.environ.pop("RLDK_DISABLE_JSONL", None)
os.environ.pop("RLDK_TRACK_MODE", None)

_SUPPORT = Path(__file__).parent / "support"
sys.path.insert(0, str(_SUPPORT))

pytest_plugins = [
    f"rldk_testsupport.{m.name}"
    for m in pkgutil.iter_modules([str(_SUPPORT / "rldk_testsupport")])
    if not m.name.startswith("_")
]
