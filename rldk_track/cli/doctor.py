"""``rldk-track doctor``: which trackers are installed and reachable, and what is waiting to sync.

Network use is limited to the trackers configured here: the MLflow tracking URI (when it is a
server) and, only with W&B credentials in online mode, the W&B base URL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from rldk_track.cli.common import add_format_arguments, resolve_dir

EPILOG = """\
checks: rldk_track and Python versions; each backend (installed? its version); MLflow: the
tracking URI in use and whether it answers; W&B: mode and whether credentials are configured
(online: whether the server answers); TensorBoard: the log dir and its runs; NVML (GPU
metrics); event logs under --dir: runs not yet delivered to a tracker and runs that never ended.

exit codes: 0 all good; 1 something needs attention (a tracker unreachable, records waiting
            for `rldk-track sync`, a run that never ended); 2 bad input.
"""

OK, NOTE, WARN = "ok", "--", "!!"


@dataclass
class Check:
    """One line of the report: ``status`` is ok, -- (information) or !! (needs attention)."""

    area: str
    status: str
    detail: str


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check which trackers are installed and reachable, GPU metrics, and pending syncs",
        description="Check the environment rldk_track records into: installed backends, the MLflow "
        "tracking URI, W&B mode and credentials, TensorBoard log dir, NVML, and event logs waiting "
        "for `rldk-track sync`.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dir", default=None, help="run directory (default: RLDK_TRACK_DIR or ./rldk_runs)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI to check (default: MLFLOW_TRACKING_URI, else <dir>/mlflow.db)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each tracker (default 5)")
    add_format_arguments(p, what="the checks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_dir = resolve_dir(args.dir)
    checks = [
        *check_versions(),
        *check_backends(),
        *check_mlflow(args.tracking_uri, run_dir, args.timeout),
        *check_wandb(args.timeout),
        *check_tensorboard(run_dir),
        *check_nvml(),
        *check_event_logs(run_dir),
    ]
    if args.format == "json":
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        width = max(len(c.area) for c in checks)
        for c in checks:
            print(f"{c.status}  {c.area.ljust(width)}  {c.detail}")
    return 1 if any(c.status == WARN for c in checks) else 0


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_versions() -> list[Check]:
    from rldk_track.version import __version__

    return [Check("rldk_track", OK, f"{__version__} on Python {sys.version.split()[0]} ({sys.executable})")]


def check_backends() -> list[Check]:
    from rldk_track import backends

    out = [Check("backend jsonl", OK, "built in (the local event log, always on)")]
    dists = {"mlflow": "mlflow", "wandb": "wandb", "tensorboard": "tensorboard"}
    for name in backends.available():
        try:
            backends.resolve(name)
        except Exception as exc:  # a missing extra, or a third-party entry point that fails to load
            out.append(Check(f"backend {name}", NOTE, f"not usable: {exc}"))
            continue
        version = _version(dists.get(name, name))
        out.append(Check(f"backend {name}", OK, f"installed{f' ({version})' if version else ''}"))
    return out


def check_mlflow(tracking_uri: str | None, run_dir: Path, timeout: float) -> list[Check]:
    if _version("mlflow") is None:
        return []
    env = os.environ.get("MLFLOW_TRACKING_URI")
    uri = tracking_uri or env or f"sqlite:///{(run_dir / 'mlflow.db').absolute()}"
    origin = "--tracking-uri" if tracking_uri else "MLFLOW_TRACKING_URI" if env else "default embedded store"
    out = [Check("mlflow uri", OK, f"{uri} ({origin})")]
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
                out.append(Check("mlflow server", OK, f"answers ({response.status})"))
        except (urllib.error.URLError, OSError) as exc:
            out.append(Check("mlflow server", WARN, f"does not answer: {getattr(exc, 'reason', exc)}; records wait in "
                             "the event log until it is back (then `rldk-track sync`)"))
    elif uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.exists():
            out.append(Check("mlflow store", NOTE, f"{path} does not exist yet (created by the first run)"))
        else:
            try:
                from mlflow import MlflowClient

                experiments = MlflowClient(uri).search_experiments(max_results=1000)
                out.append(Check("mlflow store", OK, f"{path}: {len(experiments)} experiment(s); view with "
                                 f"`rldk-track ui` or `mlflow ui --backend-store-uri {uri}`"))
            except Exception as exc:
                out.append(Check("mlflow store", WARN, f"{path} cannot be read: {str(exc)[:200]}"))
    return out


def check_wandb(timeout: float) -> list[Check]:
    if _version("wandb") is None:
        return []
    mode = os.environ.get("WANDB_MODE") or "online"
    if mode in ("offline", "dryrun", "disabled"):
        return [Check("wandb", OK, f"mode {mode} (WANDB_MODE): runs are written locally; upload with `wandb sync`")]
    import wandb

    try:
        has_key = bool(wandb.login(prompt=False, verify=False))
    except Exception:  # a broken settings file: the backend falls back to offline as well
        has_key = False
    if not has_key:
        return [Check("wandb", NOTE, "no W&B credentials (WANDB_API_KEY or `wandb login`): the wandb backend "
                      "records offline; upload later with `wandb sync`")]
    base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    try:
        with urllib.request.urlopen(base, timeout=timeout):
            pass
        return [Check("wandb", OK, f"online, credentials configured, {base} answers")]
    except urllib.error.HTTPError:
        return [Check("wandb", OK, f"online, credentials configured, {base} answers")]
    except (urllib.error.URLError, OSError) as exc:
        return [Check("wandb", WARN, f"online with credentials, but {base} does not answer ({getattr(exc, 'reason', exc)})")]


def check_tensorboard(run_dir: Path) -> list[Check]:
    if _version("tensorboard") is None:
        return []
    logdir = run_dir / "tensorboard"
    if not logdir.is_dir():
        return [Check("tensorboard", NOTE, f"{logdir} does not exist yet")]
    from rldk_track.readers.tensorboard import run_dirs

    runs = run_dirs(logdir)
    return [Check("tensorboard", OK, f"{logdir}: {len(runs)} run(s); view with `rldk-track ui` or "
                  f"`tensorboard --logdir {logdir} --host 127.0.0.1`")]


def check_nvml() -> list[Check]:
    try:
        import pynvml
    except ImportError:
        return [Check("gpu (nvml)", NOTE, "nvidia-ml-py is not installed: no GPU metrics")]
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        return [Check("gpu (nvml)", NOTE, f"no NVIDIA driver ({type(exc).__name__}): GPU metrics off, CPU only")]
    try:
        count = pynvml.nvmlDeviceGetCount()
        names = [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
        driver = pynvml.nvmlSystemGetDriverVersion()
    finally:
        pynvml.nvmlShutdown()
    names = [n.decode() if isinstance(n, bytes) else n for n in names]
    driver = driver.decode() if isinstance(driver, bytes) else driver
    return [Check("gpu (nvml)", OK, f"{count} GPU(s), driver {driver}: {', '.join(names)}")]


def check_event_logs(run_dir: Path) -> list[Check]:
    """Runs whose trackers are behind their event log, and runs that never ended."""
    from rldk_track.eventlog import read_cursor, summarize
    from rldk_track.layout import RunLayout, event_logs

    if not (run_dir / "events").is_dir():
        return [Check("event logs", NOTE, f"{run_dir / 'events'} does not exist yet")]
    logs = event_logs(run_dir)
    out = []
    behind: list[str] = []
    unfinished: list[str] = []
    for path in logs:
        summary = summarize(path)
        name = summary.start.name if summary.start else path.stem
        layout = RunLayout.from_event_log(path)
        for backend in summary.start.backends if summary.start else ():
            missing = summary.last_seq - int(read_cursor(layout.cursor(backend)).get("seq", -1))
            if missing > 0:
                behind.append(f"{name} ({backend}: {missing} records)")
        if not summary.ended:
            unfinished.append(name)
    out.append(Check("event logs", OK, f"{len(logs)} run(s) in {run_dir / 'events'}"))
    if behind:
        out.append(Check("sync pending", WARN, f"{', '.join(behind[:10])}{' ...' if len(behind) > 10 else ''}: "
                         f"run `rldk-track sync {run_dir}`"))
    if unfinished:
        out.append(Check("unfinished", WARN, f"{', '.join(unfinished[:10])}{' ...' if len(unfinished) > 10 else ''} "
                         f"never ended (still running, or crashed: `rldk-track sync {run_dir}` ends them as killed)"))
    return out
