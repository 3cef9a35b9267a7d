"""``rldk-track openrlhf [options] -- COMMAND ...``: run an OpenRLHF command, recorded.

Users change one word of their command. Two ways a command is run:

- **Ray (PPO)**, e.g. ``-- python -m openrlhf.cli.train_ppo_ray ...``: Ray is initialised here,
  in the driver, with :func:`~rldk_track.integrations.openrlhf.ray_runtime_env` (the worker setup
  hook and the settings), then the module runs in this process as ``__main__``; OpenRLHF sees Ray
  initialised and uses it. Every Ray worker of the job installs the patch, so the trainer actor
  records. Picked for ``python [-m] X`` when X's name contains ``ray`` (or with ``--ray``).
- **Anything else** (``deepspeed``, ``torchrun``, ``python -m openrlhf.cli.train_sft``, a shell
  script): run as a child with ``PYTHONPATH`` pointing at a generated ``sitecustomize`` that
  installs the patch in every Python process the command starts (each rank; the sitecustomize it
  shadows, if any, still runs).

One run id (``RLDK_RUN_ID``) and one run directory are shared by every process, so a training
run is one tracker run however many ranks and actors it has.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import re
import runpy
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

from rldk_track import lifecycle
from rldk_track.integrations.openrlhf import (
    Settings,
    launcher_status_path_for,
    openrlhf_installed,
    ray_runtime_env,
    run_dir_of,
    settings_env,
)
from rldk_track.layout import RunLayout
from rldk_track.run import resolve_backends

log = logging.getLogger("rldk_track")

_PYTHON = re.compile(r"^python(\d+(\.\d+)*)?$")

SITECUSTOMIZE = '''\
"""Written by `rldk-track openrlhf`: record OpenRLHF in every Python process of this command."""
import importlib.machinery
import importlib.util
import os
import sys

try:
    from rldk_track.integrations.openrlhf import install_from_env

    install_from_env()
except Exception as exc:  # never stop the user's program
    sys.stderr.write(f"rldk_track: could not install the OpenRLHF hook: {exc}\\n")

# Run the sitecustomize that this one shadows, if there is one.
_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _here]
)
if _spec is not None and _spec.loader is not None:
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The launcher's options (shared by ``rldk-track openrlhf`` and ``python -m``)."""
    parser.add_argument("--backend", "-b", action="append", metavar="NAME",
                        help="tracker backend (repeatable or comma-separated; default: RLDK_TRACK_BACKENDS, else jsonl)")
    parser.add_argument("--project", help="project (MLflow experiment, W&B project); default rlhf")
    parser.add_argument("--run-name", help="run name (default: OpenRLHF's --logger.wandb.run_name)")
    parser.add_argument("--run-id", help="run id shared by all processes (default: a new one)")
    parser.add_argument("--dir", help="run directory for event logs (default: RLDK_TRACK_DIR, else ./rldk_runs)")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="run tag (repeatable)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI")
    parser.add_argument("--per-rank", action="store_true",
                        help="every rank writes its own event log (see rldk-track merge)")
    parser.add_argument("--system-metrics", action="store_true",
                        help="sample GPU/CPU/memory on each node (with --per-rank: every node, else rank 0's)")
    parser.add_argument("--no-analyzers", action="store_true", help="do not run the health analyzers")
    parser.add_argument("--no-checkpoint-health", action="store_true", help="do not analyze saved checkpoints")
    parser.add_argument("--no-samples", action="store_true", help="do not record PPO's generated samples (the sample set completions)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--ray", dest="ray", action="store_true", default=None,
                      help="initialise Ray with the setup hook before running the Python command")
    mode.add_argument("--no-ray", dest="ray", action="store_false", help="never initialise Ray here")
    parser.add_argument("--address", help="Ray cluster to attach to (e.g. auto); default: start a local one")
    parser.add_argument("--runtime-env-json", help="Ray runtime_env (JSON) to merge the hook and settings into")
    parser.add_argument("--print-runtime-env", action="store_true",
                        help="print the Ray runtime_env JSON (for ray job submit --runtime-env-json) and exit")
    parser.add_argument("--wait", type=float, default=None,
                        help="seconds to wait after a Ray job for the trainer actor to finish its run "
                             "(default: 2 x RLDK_EXIT_TIMEOUT + 30)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")


def settings_from_args(args: argparse.Namespace) -> Settings:
    backends = [b for spec in (args.backend or []) for b in spec.split(",") if b.strip()] or None
    init: dict[str, Any] = {}
    for key in ("project", "run_name", "run_id", "dir"):
        if getattr(args, key):
            init[key] = getattr(args, key)
    if args.dir:
        init["dir"] = str(Path(args.dir).absolute())
    tags = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"rldk-track openrlhf: --tag takes KEY=VALUE, not {item!r}")
        tags[key] = value
    if tags:
        init["tags"] = tags
    if args.tracking_uri:
        init["mlflow"] = {"tracking_uri": args.tracking_uri}
    if args.per_rank:
        init["per_rank"] = True
    init["analyzers"] = None if args.no_analyzers else "default"
    return Settings(backend=backends, init=init, checkpoint_health=not args.no_checkpoint_health,
                    samples=not args.no_samples, system_metrics=args.system_metrics)


def run_from_args(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command and not args.print_runtime_env:
        print("rldk-track openrlhf: give the command after --, e.g.\n"
              "  rldk-track openrlhf --backend mlflow -- python -m openrlhf.cli.train_ppo_ray ...", file=sys.stderr)
        return 2
    runtime_env = None
    if args.runtime_env_json:
        try:
            runtime_env = json.loads(args.runtime_env_json)
        except ValueError as exc:
            print(f"rldk-track openrlhf: --runtime-env-json is not JSON: {exc}", file=sys.stderr)
            return 2
    if args.print_runtime_env:
        settings = settings_from_args(args)
        run_id = settings.init.get("run_id") or uuid.uuid4().hex[:12]
        print(json.dumps(ray_runtime_env(settings, run_id=run_id, base=runtime_env)))
        return 0
    return launch(command, settings_from_args(args), ray=args.ray, address=args.address,
                  runtime_env=runtime_env, wait=args.wait)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rldk_track.integrations.openrlhf [options] -- COMMAND ...``"""
    parser = argparse.ArgumentParser(prog="python -m rldk_track.integrations.openrlhf",
                                     description="Run an OpenRLHF command with rldk_track recording it.")
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_from_args(parser.parse_args(argv))


# -- launching -------------------------------------------------------------------------------
def python_target(command: Sequence[str]) -> tuple[str, str, list[str]] | None:
    """``("module", name, argv)`` for ``python [-u] -m name ...``, ``("path", file, argv)`` for
    ``python [-u] file.py ...``, None for any other command."""
    if not command or not (_PYTHON.match(os.path.basename(command[0])) or command[0] == sys.executable):
        return None
    rest = list(command[1:])
    while rest and rest[0] in ("-u", "-B", "-O", "-OO"):
        rest.pop(0)
    if len(rest) >= 2 and rest[0] == "-m":
        return "module", rest[1], rest[2:]
    if rest and rest[0].endswith(".py"):
        return "path", rest[0], rest[1:]
    return None


def uses_ray(command: Sequence[str], ray: bool | None = None) -> bool:
    """Whether the launcher initialises Ray for ``command``: as ``--ray``/``--no-ray`` say, else
    for ``python [-m] X`` whose last name part contains ``ray`` (``openrlhf.cli.train_ppo_ray``)."""
    if ray is not None:
        return ray
    target = python_target(command)
    if target is None:
        return False
    kind, name, _ = target
    last = name.rsplit(".", 1)[-1] if kind == "module" else Path(name).stem  # not Path(module).stem: "openrlhf.cli"
    return "ray" in last


def launch(
    command: Sequence[str],
    settings: Settings,
    *,
    ray: bool | None = None,
    address: str | None = None,
    runtime_env: Mapping[str, Any] | None = None,
    wait: float | None = None,
) -> int:
    """Run ``command`` with OpenRLHF recorded per ``settings``; returns its exit code."""
    if not openrlhf_installed():
        print("rldk-track openrlhf: OpenRLHF is not installed in this environment (see docs/openrlhf.md)",
              file=sys.stderr)
        return 2
    try:
        resolve_backends(settings.backend)  # a typo stops here, not in every rank after the model loaded
    except (ValueError, ImportError) as exc:
        print(f"rldk-track openrlhf: {exc}", file=sys.stderr)
        return 2
    run_id = (settings.init.get("run_id") or os.environ.get("RLDK_RUN_ID") or checkpoint_run_id(command)
              or uuid.uuid4().hex[:12])
    remember_run_id(command, run_id)
    env = settings_env(settings, run_id=run_id)
    os.environ.update(env)  # this process and everything it starts share the run
    target = python_target(command)
    if not uses_ray(command, ray):
        return _run_child(command, env)
    if target is None:
        print("rldk-track openrlhf: --ray needs a Python command (python -m MODULE ... or python SCRIPT.py ...)",
              file=sys.stderr)
        return 2
    kind, name, argv = target
    return _run_ray_driver(kind, name, argv, settings, run_id, address, runtime_env, wait)


#: Where the run id is kept in OpenRLHF's checkpoint folder, so a relaunch that loads the
#: checkpoint continues the run.
RUN_ID_FILE = "rldk_run_id"
_CKPT_PATH_FLAGS = ("--ckpt.path", "--ckpt_path")  # OpenRLHF 0.11 / older releases
_LOAD_FLAGS = ("--ckpt.load_enable", "--load_checkpoint")


def checkpoint_path(command: Sequence[str]) -> Path | None:
    """The checkpoint folder an OpenRLHF command names (``--ckpt.path DIR``), or None."""
    for i, arg in enumerate(command):
        flag, sep, value = arg.partition("=")
        if flag in _CKPT_PATH_FLAGS:
            if sep:
                return Path(value)
            if i + 1 < len(command):
                return Path(command[i + 1])
    return None


def checkpoint_run_id(command: Sequence[str]) -> str | None:
    """The run a command that loads its checkpoint (``--ckpt.load_enable``, formerly
    ``--load_checkpoint``) continues: the id kept in its checkpoint folder, if any."""
    path = checkpoint_path(command)
    if path is None or not any(arg in _LOAD_FLAGS for arg in command):
        return None
    try:
        return (path / RUN_ID_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def remember_run_id(command: Sequence[str], run_id: str) -> None:
    """Keep ``run_id`` in the command's checkpoint folder (when it names one) for a relaunch."""
    path = checkpoint_path(command)
    if path is None:
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / RUN_ID_FILE).write_text(run_id + "\n", encoding="utf-8")
    except OSError as exc:
        log.warning("rldk_track: cannot keep the run id in %s (%s); a relaunch with --ckpt.load_enable starts a new run",
                    path, exc)


def _run_python(kind: str, name: str, argv: list[str], on_failure: Any) -> int:
    """Run a module or script as ``__main__`` in this process; its exit code. A failure is
    reported to ``on_failure`` (``"failed"``/``"killed"``) while the failing frames, and the Ray
    actor handles they hold, are still alive; then the traceback is printed."""
    sys.argv = [name, *argv]
    try:
        if kind == "module":
            runpy.run_module(name, run_name="__main__", alter_sys=True)
        else:
            sys.path.insert(0, str(Path(name).parent.absolute()))
            runpy.run_path(name, run_name="__main__")
    except SystemExit as exc:
        code = _exit_code(exc)
        if code:
            on_failure("failed")
        return code
    except BaseException as exc:
        killed = isinstance(exc, KeyboardInterrupt)
        on_failure("killed" if killed else "failed")
        traceback.print_exc()
        return 130 if killed else 1
    return 0


def _run_ray_driver(
    kind: str, name: str, argv: list[str], settings: Settings, run_id: str,
    address: str | None, runtime_env: Mapping[str, Any] | None, wait: float | None,
) -> int:
    import ray

    ray.init(address=address, runtime_env=ray_runtime_env(settings, run_id=run_id, base=runtime_env))
    status_file = launcher_status_path_for(run_dir_of(settings), run_id)
    status_file.unlink(missing_ok=True)  # left by an earlier attempt of a resumed run
    event_log = RunLayout(run_dir_of(settings), run_id).event_log  # the trainer actor's (global rank 0)
    start_offset = event_log.stat().st_size if event_log.exists() else 0

    def tell_the_actor(status: str) -> None:  # read by the trainer actor's exit hook
        status_file.parent.mkdir(parents=True, exist_ok=True)
        status_file.write_text(status)

    code = _run_python(kind, name, argv, on_failure=tell_the_actor)
    if not ray.is_initialized():  # the program shut Ray down itself: its actors were killed, not ended
        log.warning("rldk_track: Ray was shut down by the program; if the trainer actor's run has no end, "
                    "`rldk-track sync %s` delivers whatever the trackers are missing", run_dir_of(settings))
        return code
    gc.collect()  # release actor handles, so Ray ends the trainer actor gracefully
    # The actor's exit waits up to RLDK_EXIT_TIMEOUT for checkpoint analyses in flight, then as
    # long again for the run's end to reach the trackers.
    timeout = wait if wait is not None else 2 * lifecycle.exit_timeout() + 30.0
    if not wait_for_run_end(event_log, timeout, offset=start_offset):
        log.warning("rldk_track: the trainer actor's run did not end within %.0f s (%s); `rldk-track sync "
                    "%s` delivers whatever the trackers are missing", timeout, event_log, run_dir_of(settings))
    ray.shutdown()
    return code


def wait_for_run_end(event_log: Path, timeout: float, appear_within: float = 3.0, offset: int = 0) -> bool:
    """Wait until ``event_log`` holds a ``run_end`` record after byte ``offset`` (True), or
    ``timeout`` passes. A log that does not exist after ``appear_within`` seconds is on another
    node or was never started: False."""
    deadline = time.monotonic() + timeout
    appear_deadline = time.monotonic() + appear_within
    while True:
        if event_log.exists():
            with open(event_log, "rb") as f:
                f.seek(offset)
                for line in f:
                    if not line.endswith(b"\n"):
                        break
                    offset += len(line)
                    if b'"run_end"' in line and json.loads(line).get("kind") == "run_end":
                        return True
        elif time.monotonic() > appear_deadline:
            return False
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def _run_child(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Run a non-Python command (deepspeed, torchrun, ...) with the patch in all its Python processes."""
    with tempfile.TemporaryDirectory(prefix="rldk-openrlhf-") as site_dir:
        Path(site_dir, "sitecustomize.py").write_text(SITECUSTOMIZE)
        child_env = dict(os.environ)
        child_env.update(env)
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (site_dir, os.environ.get("PYTHONPATH", "")) if p)
        try:
            return subprocess.run(list(command), env=child_env).returncode
        except FileNotFoundError:
            print(f"rldk-track openrlhf: command not found: {command[0]}", file=sys.stderr)
            return 127
        except KeyboardInterrupt:  # the child got the same Ctrl-C; its own handlers finish its runs
            return 130


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1
