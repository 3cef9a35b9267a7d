"""One local Ray instance for the test session (``ray_local``): ``num_cpus=1``, no dashboard, no
usage reporting, started on first use (a few seconds) and shut down at the end of the session.

Its workers get ``tests/support`` on ``PYTHONPATH`` (so actors can import ``rldk_testsupport``),
then the checkout whose ``rldk_track`` this process imported (so actors run the code under test,
not another installed copy), and no setup hook: the pytest process is a plain driver. Other drivers attach to it with
``ray.init(address=ray_local)``, each with its own job-level ``runtime_env``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Iterator

import pytest

SUPPORT = str(Path(__file__).resolve().parents[1])
#: ``PYTHONPATH`` for Ray workers: the test support code and the rldk_track under test.
WORKER_PYTHONPATH = os.pathsep.join((SUPPORT, str(Path(__file__).resolve().parents[3])))


@pytest.fixture(scope="session")
def ray_local() -> Iterator[str]:
    """The GCS address of the session's local Ray (skips when Ray is not installed)."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no reporting to anyone, ever
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": WORKER_PYTHONPATH}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
