"""Real MLflow tracking servers for tests, started through the project's own recipe
(``backends/mlflow/serve_local.sh``) so the recipe stays true.

Fixtures:

``mlflow_server`` (session)
    One shared server on 127.0.0.1 (free port, sqlite store in a tmp dir). Use ``.uri`` as the
    tracking URI and ``.client()`` to read back. Do not stop or pause it: other tests share it.
    Keep runs apart with a unique ``project`` (experiment) or run id.

``mlflow_server_factory`` (function)
    ``server = mlflow_server_factory()`` gives the test a private running server that it may
    ``stop()``, ``start()`` again (same port and store), ``pause()`` (SIGSTOP: the kernel still
    accepts connections, nothing answers) and ``resume()`` (SIGCONT). After the test it is resumed
    and kept for a later test's factory call, so its store may hold other tests' runs: use a
    unique project. All servers are stopped at the end of the session.

A server takes 10-20 s to start (mostly imports). When the collected tests use these fixtures,
the servers are launched in the background right after collection, so that time overlaps with
the tests that run first.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

RECIPE = Path(__file__).resolve().parents[3] / "backends" / "mlflow" / "serve_local.sh"
START_TIMEOUT_S = 120.0

# The client side of the tests talks to 127.0.0.1 only.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _stop_with_this_process() -> None:
    """In the server's process, before exec: get SIGTERM when the test process dies, even by
    SIGKILL or a timeout, so no server outlives its test session (Linux only)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


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
        self._ready = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def launch(self) -> "MlflowServer":
        """Start the server process through the recipe without waiting for it to answer."""
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
                preexec_fn=_stop_with_this_process if sys.platform == "linux" else None,
            )
        self._ready = False
        return self

    def start(self, timeout: float = START_TIMEOUT_S) -> "MlflowServer":
        """Start (or restart) the server on the same port and store; return when it answers."""
        self.launch()
        if not self._ready:
            self._wait_healthy(timeout)
            self._ready = True
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
        self._ready = False

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


class _Servers:
    """The session's servers: the shared one and the idle private ones."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rldk-mlflow-servers-"))
        self.shared: MlflowServer | None = None
        self.idle: list[MlflowServer] = []
        self._count = 0

    def new(self) -> MlflowServer:
        self._count += 1
        return MlflowServer(self.root / f"server{self._count}")

    def shared_server(self) -> MlflowServer:
        if self.shared is None:
            self.shared = self.new().launch()
        return self.shared

    def close(self) -> None:
        for server in [self.shared, *self.idle]:
            if server is not None:
                server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


_SERVERS: _Servers | None = None


def _servers() -> _Servers:
    global _SERVERS
    if _SERVERS is None:
        _SERVERS = _Servers()
    return _SERVERS


@pytest.hookimpl(trylast=True)  # after -k/-m deselection
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Launch the servers the selected tests will ask for, so their start-up overlaps."""
    if config.option.collectonly or importlib.util.find_spec("mlflow") is None or not RECIPE.exists():
        return
    used = set().union(*(getattr(item, "fixturenames", ()) for item in items)) if items else set()
    if "mlflow_server" in used:
        _servers().shared_server()
    if "mlflow_server_factory" in used and not _servers().idle:
        _servers().idle.append(_servers().new().launch())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _SERVERS
    if _SERVERS is not None:
        _SERVERS.close()
        _SERVERS = None


@pytest.fixture(scope="session")
def mlflow_server() -> MlflowServer:
    """The session's shared MLflow server (see the module docstring)."""
    pytest.importorskip("mlflow")
    return _servers().shared_server().start()


@pytest.fixture
def mlflow_server_factory() -> Iterator[Callable[[], MlflowServer]]:
    """Private servers that the test may stop, restart, pause and resume."""
    pytest.importorskip("mlflow")
    servers = _servers()
    handed_out: list[MlflowServer] = []

    def private_server() -> MlflowServer:
        server = servers.idle.pop() if servers.idle else servers.new()
        handed_out.append(server)
        return server.start()

    yield private_server
    for server in handed_out:
        server.resume()
        servers.idle.append(server)
