"""What every integration does the same way: the tags that say which framework and trainer
recorded a run, the run's provenance (library versions, git commit), and the system sampler.

Framework-free on purpose: nothing here imports transformers, TRL or OpenRLHF, so an OpenRLHF
Ray worker and a TRL callback share it without importing each other's framework.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from rldk_track.version import __version__

if TYPE_CHECKING:
    from rldk_track.producers.system_sampler import SystemSampler

# -- tags: one vocabulary for every integration ----------------------------------------------
#: The framework that recorded the run: ``"trl"`` or ``"openrlhf"``.
FRAMEWORK_TAG = "rldk.framework"
#: The framework's version (``trl`` for TRL, ``openrlhf`` for OpenRLHF).
FRAMEWORK_VERSION_TAG = "rldk.framework_version"
#: The trainer class: ``GRPOTrainer``, ``Trainer``, ``BasePPOTrainer``, ``SFTTrainer``...
TRAINER_TAG = "rldk.trainer"
#: Why training was stopped early (TRL's ``stop_on``): the alert that stopped it.
STOPPED_BY_TAG = "rldk.stopped_by"


def framework_tags(framework: str, trainer: str) -> dict[str, str]:
    """The tags every integration sets on its run: framework, its version, and trainer class."""
    return {
        FRAMEWORK_TAG: framework,
        FRAMEWORK_VERSION_TAG: installed_version(framework) or "unknown",
        TRAINER_TAG: trainer,
    }


# -- provenance: what code produced the run -------------------------------------------------
#: Libraries whose versions go into every run's config (those installed); each integration adds
#: its framework's own (``trl``; ``openrlhf``, ``ray``, ``vllm``).
VERSIONED_PACKAGES = ("torch", "transformers", "accelerate", "datasets", "peft", "deepspeed")
#: The commit a launcher read where the user started it, for processes that run elsewhere (a Ray
#: actor on another node, in another directory): it wins over the process's own directory.
GIT_COMMIT_ENV = "RLDK_GIT_COMMIT"


def installed_version(package: str) -> str | None:
    """The installed distribution's version, None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def package_versions(packages: Iterable[str] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Versions of Python, rldk_track and those of ``packages`` that are installed."""
    versions = {"python": platform.python_version(), "rldk_track": __version__}
    for package in packages:
        version = installed_version(package)
        if version is not None:
            versions[package] = version
    return versions


def provenance(framework_packages: Iterable[str], start: Path | None = None) -> dict[str, Any]:
    """The run-config keys every integration records: ``versions`` (Python, rldk_track, the
    framework's ``framework_packages`` and the training libraries) and ``git.commit``: the one
    ``RLDK_GIT_COMMIT`` names (set by ``rldk-track openrlhf``), else that of the repository
    holding ``start`` (default: the working directory), when there is one."""
    out: dict[str, Any] = {"versions": package_versions((*framework_packages, *VERSIONED_PACKAGES))}
    sha = os.environ.get(GIT_COMMIT_ENV, "").strip() or git_commit(Path.cwd() if start is None else start)
    if sha:
        out["git"] = {"commit": sha}
    return out


def git_commit(start: Path) -> str | None:
    """The commit checked out in the git repository containing ``start``, read from ``.git``
    without running git (no subprocess on the training thread); None outside a repository."""
    for directory in (start, *start.parents):
        git = directory / ".git"
        if git.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = git.read_text(encoding="utf-8", errors="replace").strip()
            if not text.startswith("gitdir:"):
                return None
            git = (directory / text[len("gitdir:"):].strip()).resolve()
        if git.is_dir():
            return _resolve_head(git)
    return None


def _resolve_head(git_dir: Path) -> str | None:
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head or None
    ref = head[len("ref:"):].strip()
    common = git_dir
    commondir = git_dir / "commondir"
    if commondir.is_file():  # refs of a linked worktree live in the main repository
        common = (git_dir / commondir.read_text(encoding="utf-8").strip()).resolve()
    for base in (git_dir, common):
        try:
            return (base / ref).read_text(encoding="utf-8").strip()
        except OSError:
            continue
    try:
        for line in (common / "packed-refs").read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        pass
    return None


# -- system metrics ---------------------------------------------------------------------------
def system_sampler(system_metrics: bool | float | None) -> "SystemSampler | None":
    """The sampler an integration's ``system_metrics`` asks for: every 10 s (True), every that
    many seconds (a number), or none (False/None)."""
    if system_metrics is None or system_metrics is False:
        return None
    from rldk_track.producers.system_sampler import SystemSampler

    return SystemSampler() if system_metrics is True else SystemSampler(interval_s=float(system_metrics))
