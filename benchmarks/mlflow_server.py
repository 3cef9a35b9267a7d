"""A local MLflow tracking server for the benchmarks, started through the project's own recipe
(``backends/mlflow/serve_local.sh``: sqlite store under ``workdir``, bound to 127.0.0.1)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(workdir: Path, timeout: float = 180.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server and return it with its URI once ``/health`` answers."""
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        ["bash", str(ROOT / "backends/mlflow/serve_local.sh"), str(workdir / "server"), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2).read()
            return proc, uri
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the MLflow server did not start within {timeout:.0f} s")


def stop_mlflow_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and its worker processes (the whole process group the recipe started)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
