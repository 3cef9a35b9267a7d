"""Reading TensorBoard run directories back the way TensorBoard does, and a real TensorBoard
server started through the project's recipe (``backends/tensorboard/start.sh``).

``read_tb(run_dir)``
    Everything TensorBoard's own ``EventAccumulator`` (size_guidance 0: keep every point) finds
    in one run directory, as a :class:`TBRun`: scalars, texts, the hparams plugin's session start
    and end protos, and the event files themselves.

``tensorboard_server`` (fixture)
    Starts the recipe on a fresh log root and yields a :class:`TensorBoardServer`. Write runs
    under ``.logdir``, then ``.wait_for_run(name)`` and ``.get_json(path)``. The server is stopped
    at teardown. It takes a few seconds to start, so one test per suite is plenty.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

RECIPE = Path(__file__).resolve().parents[3] / "backends" / "tensorboard" / "start.sh"
START_TIMEOUT_S = 60.0


@dataclass
class TBRun:
    """One run directory as TensorBoard reads it."""

    path: Path
    #: tag -> [(step, value, wall_time)] in the order TensorBoard keeps them
    scalars: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)
    #: tag -> [(step, text, wall_time)]
    texts: dict[str, list[tuple[int, str, float]]] = field(default_factory=dict)
    #: the hparams plugin's SessionStartInfo / SessionEndInfo protos (None when absent)
    session_start: Any = None
    session_end: Any = None

    def hparams(self) -> dict[str, Any]:
        """The session's hparams as Python values (number, string or bool, as TensorBoard has them)."""
        out: dict[str, Any] = {}
        for name, value in self.session_start.hparams.items():
            kind = value.WhichOneof("kind")
            out[name] = {"number_value": value.number_value, "string_value": value.string_value,
                         "bool_value": value.bool_value}[kind]
        return out

    def status(self) -> str | None:
        """The session end status name (``STATUS_SUCCESS``...), None while the run is open."""
        if self.session_end is None:
            return None
        from tensorboard.plugins.hparams import api_pb2

        return api_pb2.Status.Name(self.session_end.status)

    def last_text(self, tag: str) -> str:
        return self.texts[tag][-1][1]

    @property
    def event_files(self) -> list[Path]:
        return sorted(self.path.glob("events.out.tfevents.*"))


def read_tb(run_dir: Path, purge: bool = True) -> TBRun:
    """Load ``run_dir`` with TensorBoard's ``EventAccumulator``, keeping every point (``purge``:
    after dropping what its view drops when a step goes back, as TensorBoard does; without it,
    every event in the files, duplicates included)."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.plugins.hparams import metadata as hparams_metadata
    from tensorboard.util import tensor_util

    keep_all = {kind: 0 for kind in ea.DEFAULT_SIZE_GUIDANCE}
    acc = ea.EventAccumulator(str(run_dir), size_guidance=keep_all, purge_orphaned_data=purge).Reload()
    run = TBRun(Path(run_dir))
    tags = acc.Tags()
    for tag in tags[ea.SCALARS]:
        run.scalars[tag] = [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)]
    for tag in _plugin_tags(acc, "text"):
        run.texts[tag] = [
            (e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode("utf-8"), e.wall_time)
            for e in acc.Tensors(tag)
        ]
    hparams = _plugin_tags(acc, hparams_metadata.PLUGIN_NAME)
    if hparams_metadata.SESSION_START_INFO_TAG in hparams:
        run.session_start = hparams_metadata.parse_session_start_info_plugin_data(
            hparams[hparams_metadata.SESSION_START_INFO_TAG])
    if hparams_metadata.SESSION_END_INFO_TAG in hparams:
        run.session_end = hparams_metadata.parse_session_end_info_plugin_data(
            hparams[hparams_metadata.SESSION_END_INFO_TAG])
    return run


def _plugin_tags(acc: Any, plugin: str) -> dict[str, bytes]:
    try:
        return acc.PluginTagToContent(plugin)
    except KeyError:
        return {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TensorBoardServer:
    """``tensorboard`` on 127.0.0.1, started by the recipe on ``logdir``."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = Path(logdir)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.logdir.parent / "tensorboard-server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "TensorBoardServer":
        env = {**os.environ, "PYTHON": sys.executable, "TB_RELOAD_INTERVAL": "1"}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(["bash", str(RECIPE), str(self.logdir), str(self.port)],
                                          stdout=log, stderr=subprocess.STDOUT, env=env)
        self._wait(lambda: self.get_json("/data/runs") is not None, "answer")
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(15)

    def get_json(self, path: str, **params: str) -> Any:
        """GET ``path`` and parse JSON; None when the server does not answer (yet)."""
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def post_json(self, path: str, body: Any) -> Any:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def wait_for_run(self, name: str) -> None:
        """Until TensorBoard lists ``name`` with its scalar tags (it re-reads every second here)."""
        self._wait(lambda: bool((self.get_json("/data/plugin/scalars/tags") or {}).get(name)), f"list run {name!r}")

    def _wait(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            if ready():
                return
            time.sleep(0.25)
        raise RuntimeError(f"tensorboard did not {what} within {START_TIMEOUT_S:.0f} s:\n"
                           f"{self.log_path.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def tensorboard_server(tmp_path: Path) -> Iterator[TensorBoardServer]:
    """A real TensorBoard server (through the recipe) on an empty log root under ``tmp_path``."""
    logdir = tmp_path / "tensorboard"
    logdir.mkdir()
    server = TensorBoardServer(logdir).start()
    try:
        yield server
    finally:
        server.stop()
