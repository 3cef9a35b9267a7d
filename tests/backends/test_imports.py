"""The arrows between backends, vocabularies, the alert policy and readers run one way (issue 8):
backends never import a reader, the run, the dispatcher or the package root; readers import a
tracker's vocabulary, never its backend (only W&B's run-file parser, which is W&B code); the
vocabularies and the alert policy import no part above them. Lazy imports inside functions count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "rldk_track"


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path: Path) -> set[str]:
    """Every ``rldk_track`` module ``path`` imports, anywhere in it (``from a import b`` names
    ``a.b`` when that is a module, else ``a``: ``from rldk_track import __version__`` imports the
    package root)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if _is_module(submodule) else node.module)
    return {name for name in found if name == "rldk_track" or name.startswith("rldk_track.")}


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).glob("*.py"))


@pytest.mark.parametrize("path", modules("backends"), ids=lambda p: p.name)
def test_a_backend_imports_no_reader_run_dispatcher_or_package_root(path):
    reaching_up = {name for name in imports(path)
                   if name == "rldk_track" or name.startswith(("rldk_track.readers", "rldk_track.run",
                                                               "rldk_track.dispatch", "rldk_track.compare"))}
    assert reaching_up == set()


@pytest.mark.parametrize("path", modules("readers"), ids=lambda p: p.name)
def test_a_reader_imports_no_backend_but_the_wandb_run_file_parser(path):
    backends = {name for name in imports(path) if name.startswith("rldk_track.backends")}
    assert backends <= {"rldk_track.backends.wandb_offline"}


@pytest.mark.parametrize("path", [*modules("vocab"), PACKAGE / "alerts.py"], ids=lambda p: p.name)
def test_the_vocabularies_and_the_alert_policy_import_only_the_record_model(path):
    assert imports(path) <= {"rldk_track.records"}
