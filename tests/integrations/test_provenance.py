"""What every integration records about the code that produced a run (versions, git commit) and
the tags that say which framework and trainer recorded it: one vocabulary, defined once in
``rldk_track.integrations.common``, for TRL and OpenRLHF alike."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from rldk_track.integrations import common
from rldk_track.integrations.openrlhf import Settings, settings_env
from rldk_track.version import __version__

SHA_A = "a" * 40
SHA_B = "b" * 40


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(repo), "PATH": "/usr/bin:/bin"}).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository with one commit, on branch main."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "train.py").write_text("print('train')\n")
    git(path, "add", "train.py")
    git(path, "commit", "-q", "-m", "first")
    return path


def test_git_commit_is_the_checked_out_commit_from_any_subdirectory(repo: Path) -> None:
    (repo / "src" / "deep").mkdir(parents=True)
    assert common.git_commit(repo / "src" / "deep") == git(repo, "rev-parse", "HEAD")


def test_git_commit_reads_packed_refs_and_linked_worktrees(repo: Path, tmp_path: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert common.git_commit(repo) == head
    git(repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "side"))
    assert (tmp_path / "side" / ".git").is_file()  # "gitdir: ..."
    assert common.git_commit(tmp_path / "side") == head


def test_git_commit_of_a_detached_head_and_outside_any_repository(tmp_path: Path) -> None:
    (tmp_path / "detached" / ".git").mkdir(parents=True)
    (tmp_path / "detached" / ".git" / "HEAD").write_text(SHA_A + "\n")
    assert common.git_commit(tmp_path / "detached") == SHA_A
    (tmp_path / "plain").mkdir()
    assert common.git_commit(tmp_path / "plain") is None


def test_package_versions_lists_python_rldk_track_and_only_installed_packages() -> None:
    versions = common.package_versions(("torch", "surely-not-an-installed-package"))
    assert versions == {"python": platform.python_version(), "rldk_track": __version__,
                        "torch": metadata.version("torch")}


def test_provenance_names_the_frameworks_packages_and_the_commit(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(common.GIT_COMMIT_ENV, raising=False)
    config = common.provenance(("trl",), start=repo)
    assert config["versions"]["trl"] == metadata.version("trl")
    assert config["versions"]["transformers"] == metadata.version("transformers")
    assert config["git"] == {"commit": git(repo, "rev-parse", "HEAD")}


def test_a_launchers_commit_wins_over_the_processs_own_directory(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(common.GIT_COMMIT_ENV, SHA_B)
    assert common.provenance((), start=repo)["git"] == {"commit": SHA_B}


def test_no_git_key_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(common.GIT_COMMIT_ENV, raising=False)
    assert "git" not in common.provenance((), start=tmp_path)


def test_the_openrlhf_launcher_passes_the_commit_it_was_started_in(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(common.GIT_COMMIT_ENV, raising=False)
    monkeypatch.chdir(repo)
    env = settings_env(Settings(), run_id="r1")
    assert env[common.GIT_COMMIT_ENV] == git(repo, "rev-parse", "HEAD")


def test_framework_tags_are_one_vocabulary() -> None:
    assert common.framework_tags("trl", "GRPOTrainer") == {
        "rldk.framework": "trl", "rldk.framework_version": metadata.version("trl"), "rldk.trainer": "GRPOTrainer"}
    assert common.framework_tags("not-installed-framework", "X")["rldk.framework_version"] == "unknown"
