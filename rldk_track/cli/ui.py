"""``rldk-track ui``: open the local trackers' web UIs (MLflow, TensorBoard, trackio) on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rldk_track.cli.common import resolve_dir
from rldk_track.vocab.mlflow import ui_url

EPILOG = """\
Starts, on this machine only (127.0.0.1):
  mlflow ui    on the embedded store <dir>/mlflow.db (or --tracking-uri when it is a sqlite or
               file store; a tracking server given by MLFLOW_TRACKING_URI is just printed)
  tensorboard  on <dir>/tensorboard
  trackio      trackio's dashboard on its local store (TRACKIO_DIR), when runs in <dir> recorded to
               trackio; no share link
prints their URLs and keeps them running until Ctrl-C (or SIGTERM). A busy port is replaced
by a free one.
From another machine, forward the ports: ssh -L 5000:127.0.0.1:5000 -L 6006:127.0.0.1:6006 -L 7860:127.0.0.1:7860 HOST

exit codes: 0 served (or --check passed); 1 a UI failed to start; 2 nothing to show.
"""

START_TIMEOUT_S = 120.0


@dataclass
class Server:
    name: str
    url: str
    ready_path: str
    command: list[str] | None  # None: already running elsewhere (only printed)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ui",
        help="start MLflow's and TensorBoard's web UIs on the local stores (127.0.0.1) and print the URLs",
        description="Serve the local MLflow store and TensorBoard log dir that rldk_track writes by default.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dir", default=None, help="run directory (default: RLDK_TRACK_DIR or ./rldk_runs)")
    p.add_argument("--tracking-uri", help="MLflow store to serve (default: MLFLOW_TRACKING_URI, else <dir>/mlflow.db)")
    p.add_argument("--mlflow-port", type=int, default=5000, help="port for MLflow (default 5000; 0: any free port)")
    p.add_argument("--tensorboard-port", type=int, default=6006, help="port for TensorBoard (default 6006; 0: any free port)")
    p.add_argument("--trackio-port", type=int, default=7860, help="port for trackio's dashboard (default 7860; 0: any free port)")
    p.add_argument("--no-mlflow", action="store_true", help="do not start MLflow")
    p.add_argument("--no-tensorboard", action="store_true", help="do not start TensorBoard")
    p.add_argument("--no-trackio", action="store_true", help="do not start trackio's dashboard")
    p.add_argument("--check", action="store_true", help="start, wait until both answer, print the URLs, stop")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_dir = resolve_dir(args.dir).absolute()
    servers: list[Server] = []
    if not args.no_mlflow:
        server = mlflow_server(run_dir, args.tracking_uri, args.mlflow_port)
        if server:
            servers.append(server)
    if not args.no_tensorboard:
        server = tensorboard_server(run_dir, args.tensorboard_port)
        if server:
            servers.append(server)
    if not args.no_trackio:
        server = trackio_server(run_dir, args.trackio_port)
        if server:
            servers.append(server)
    if not servers:
        print(f"rldk-track: error: nothing to show: no MLflow store or TensorBoard log dir under {run_dir} "
              "(run something first, or pass --dir / --tracking-uri)", file=sys.stderr)
        return 2
    logs = Path(tempfile.mkdtemp(prefix="rldk-ui-"))
    failed = False
    previous = {sig: signal.signal(sig, _stop_serving) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        for server in servers:
            if server.command:
                server.log = logs / f"{server.name}.log"
                server.process = _start(server.command, server.log)
        for server in servers:
            if wait_ready(server, START_TIMEOUT_S):
                print(f"{server.name:<12} {server.url}", flush=True)
            else:
                failed = True
                tail = server.log.read_text(errors="replace")[-2000:] if server.log and server.log.exists() else ""
                print(f"rldk-track: {server.name} did not start (log: {server.log}):\n{tail}", file=sys.stderr)
        if failed or args.check:
            return 1 if failed else 0
        print("Ctrl-C to stop", file=sys.stderr, flush=True)
        while all(s.process is None or s.process.poll() is None for s in servers):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for server in servers:
            _stop(server.process)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_serving(signum: int, frame: object) -> None:
    """SIGTERM/SIGHUP end serving like Ctrl-C does (the UIs are stopped on the way out)."""
    raise KeyboardInterrupt


def mlflow_server(run_dir: Path, tracking_uri: str | None, port: int) -> Server | None:
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{run_dir / 'mlflow.db'}"
    experiment_id = latest_cursor_state(run_dir, "mlflow").get("experiment_id")
    if uri.startswith(("http://", "https://")):
        return Server("mlflow", ui_url(uri, experiment_id), "/health", None)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        return None
    port = free_port(port)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    return Server("mlflow", ui_url(f"http://127.0.0.1:{port}", experiment_id), "/health", command)


def latest_cursor_state(run_dir: Path, backend: str) -> dict:
    """What ``backend`` recorded about the latest run in ``run_dir`` that went to it (its cursor
    file next to the event log: MLflow's experiment id, trackio's project and store), or {}."""
    cursors = sorted((run_dir / "events").glob(f"*.{backend}.cursor.json"), key=lambda p: p.stat().st_mtime)
    if not cursors:
        return {}
    try:
        state = json.loads(cursors[-1].read_text(encoding="utf-8")).get("state") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return state if isinstance(state, dict) else {}


def tensorboard_server(run_dir: Path, port: int) -> Server | None:
    logdir = run_dir / "tensorboard"
    if not logdir.is_dir():
        return None
    port = free_port(port)
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
               "--port", str(port), "--reload_interval", "5"]
    return Server("tensorboard", f"http://127.0.0.1:{port}", "/data/runs", command)


#: Serves trackio's dashboard like ``trackio show`` does, on 127.0.0.1 only, with no share link
#: and no browser opened (``trackio show`` has no port option).
#: The store is the one the run recorded to (``TRACKIO_DIR`` is read when trackio is imported).
TRACKIO_SHOW = ("import os, sys; os.environ['TRACKIO_DIR'] = sys.argv[3] or os.environ.get('TRACKIO_DIR', ''); "
                "os.environ['TRACKIO_DIR'] or os.environ.pop('TRACKIO_DIR'); import trackio; "
                "trackio.show(project=sys.argv[1] or None, host='127.0.0.1', server_port=int(sys.argv[2]), "
                "share=False, open_browser=False, block_thread=True)")


def trackio_server(run_dir: Path, port: int) -> Server | None:
    """Trackio's dashboard, when a run in ``run_dir`` recorded to trackio (a trackio cursor file
    is next to its event log), on the store and project the latest such run recorded to."""
    if not any((run_dir / "events").glob("*.trackio.cursor.json")):
        return None
    state = latest_cursor_state(run_dir, "trackio")
    project, store = str(state.get("project") or ""), str(state.get("trackio_dir") or "")
    port = free_port(port)
    command = [sys.executable, "-c", TRACKIO_SHOW, project, str(port), store]
    query = f"/?project={urllib.parse.quote(project)}" if project else "/"
    return Server("trackio", f"http://127.0.0.1:{port}{query}", "/version", command)


def free_port(wanted: int) -> int:
    """``wanted`` if nothing listens on it on 127.0.0.1, else (or for 0) a free port the OS picks."""
    if wanted:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", wanted))
                return wanted
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if wanted:
        print(f"port {wanted} is busy; using {port}", file=sys.stderr)
    return port


def _start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")}
    with open(log, "ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_ready(server: Server, timeout: float) -> bool:
    """True once ``server`` answers 200 on its ready path (False if it exits or times out)."""
    parts = urllib.parse.urlsplit(server.url)  # the URL may carry a query (trackio's ?project=)
    ready_url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}{server.ready_path}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(ready_url, timeout=3) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            if server.process is None:
                return False
        time.sleep(0.3)
    return False


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    """Stop a UI and its children (they share its process group)."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(15)
    except ProcessLookupError:
        pass
