"""Real MLflow tracking servers for tests, started through the project's own recipe
(``backends/mlflow/serve_local.sh``) so the recipe stays true.

Fixtures:

``mlflow_server`` (session)
    One shared server on 127.0.0.1 (free port, sqlite store in a tmp dir), started on first use
    (~10-15 s) and stopped at the end of the session. Use ``.uri`` as the tracking URI and
    ``.client()`` to read back. Do not stop or pause it: other tests share it. Keep runs apart
    with a unique ``project`` (experiment) or run id.

``mlflow_server_factory`` (function)
    ``server = mlflow_server_factory()`` gives the test a private running server that it may
    ``stop()``, ``start()`` again (same port and store), ``pause()`` (SIGSTOP: the kernel still
    accepts connections, nothing answers) and ``resume()`` (SIGCONT). After the test it is resumed
    and kept for a later test's factory call (a start costs ~10-15 s), so its store may hold other
    tests' runs: use a unique project. All of them are stopped at the end of the session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

RECIPE = Path(__file__).resolve().parents[3] / "backends" / "mlflow" / "serve_local.sh"
START_TIMEOUT_S = 90.0

# The client side of the tests talks to 127.0.0.1 only.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """One ``mlflow server`` process group on 127.0.0.1, with a sqlite store under ``dir``."""

    def __init__(self, dir: Path, port: int | None = None) -> None:
        self.dir = Path(dir)
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log_path = self.dir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S) -> "MlflowServer":
        """Start (or restart) the server on the same port and store; return when it answers."""
        if self.running:
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        # the recipe runs `mlflow` from PATH: use the one next to this interpreter
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                ["bash", str(RECIPE), str(self.dir), str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited during start-up:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def _signal(self, sig: int) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, sig)

    def pause(self) -> None:
        """SIGSTOP the whole server: the kernel still accepts connections, nothing answers."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`; requests that waited are answered."""
        if self._paused:
            self._signal(signal.SIGCONT)
            self._paused = False

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL); the store stays for a later :meth:`start`."""
        proc = self._proc
        if proc is None:
            return
        if self._paused:
            self.resume()
        self._signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            proc.wait(timeout)
        try:  # the server's children (uvicorn) share the process group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._proc = None

    def client(self) -> Any:
        """An ``MlflowClient`` for this server."""
        from mlflow import MlflowClient

        return MlflowClient(self.uri)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no server log)"

    def __repr__(self) -> str:
        return f"MlflowServer({self.uri}, dir={self.dir})"


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """The session's shared MLflow server (see the module docstring)."""
    pytest.importorskip("mlflow")
    server = MlflowServer(tmp_path_factory.mktemp("mlflow_server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _mlflow_private_servers() -> Iterator[list[MlflowServer]]:
    """Private servers no test is using right now (see ``mlflow_server_factory``)."""
    idle: list[MlflowServer] = []
    yield idle
    for server in idle:
        server.stop()


@pytest.fixture
def mlflow_server_factory(
    tmp_path_factory: pytest.TempPathFactory, _mlflow_private_servers: list[MlflowServer]
) -> Iterator[Callable[[], MlflowServer]]:
    """Private servers that the test may stop, restart, pause and resume."""
    pytest.importorskip("mlflow")
    handed_out: list[MlflowServer] = []

    def private_server() -> MlflowServer:
        if _mlflow_private_servers:
            server = _mlflow_private_servers.pop()
        else:
            server = MlflowServer(tmp_path_factory.mktemp("mlflow_private"))
        handed_out.append(server)
        return server.start()

    yield private_server
    for server in handed_out:
        server.resume()
        _mlflow_private_servers.append(server)
