"""The import graph shows the flow of shared/DESIGN.md (issue 8), parsed from the source with
``ast``: no import circles inside ``rldk_track/`` (a lazy, function-level import that closes one
must say why in a comment); backends never import a reader, the run, the dispatcher, post-hoc
analysis or the package root; analyzers never import the dispatcher or the run; readers import a
tracker's vocabulary, never its backend (only W&B's run-file parser, which is W&B code); the
vocabularies, the alert policy, the record model, the event log and the observer contract import
no part above them."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "rldk_track"


@dataclass(frozen=True)
class Import:
    target: str  # the rldk_track module imported
    line: int
    lazy: bool  # inside a function (runs when called), not at import
    commented: bool  # a comment on the import's line or the line above says why


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str, root: Path) -> bool:
    path = root.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _main_block(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` runs when the module is run as a script, not at import."""
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__")


def imports(path: Path, root: Path = PACKAGE) -> list[Import]:
    """Every ``rldk_track`` module ``path`` imports (``from a import b`` names ``a.b`` when that
    is a module, else ``a``: ``from rldk_track import __version__`` imports the package root).
    Imports under ``if TYPE_CHECKING:`` never run and are left out; those in a function or under
    ``if __name__ == "__main__":`` are lazy."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    package = root.name
    found: list[Import] = []

    def commented(line: int) -> bool:
        return any("#" in text for text in lines[max(0, line - 2):line])

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                for orelse in child.orelse:
                    visit(orelse, lazy)
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    submodule = f"{child.module}.{alias.name}"
                    names.append(submodule if _is_module(submodule, root) else child.module)
            for name in names:
                if name == package or name.startswith(package + "."):
                    found.append(Import(name, child.lineno, lazy, commented(child.lineno)))
            visit(child, lazy or _main_block(child) or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), False)
    return found


def graph(root: Path = PACKAGE) -> dict[str, list[Import]]:
    return {module_name(p, root): imports(p, root) for p in sorted(root.rglob("*.py"))}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges.get(node, ()):
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def module_level(modules: dict[str, list[Import]]) -> dict[str, set[str]]:
    return {m: {i.target for i in found if not i.lazy} for m, found in modules.items()}


def everything(modules: dict[str, list[Import]]) -> dict[str, set[str]]:
    return {m: {i.target for i in found} for m, found in modules.items()}


def targets(path: Path) -> set[str]:
    return {i.target for i in imports(path)}


def modules_in(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).glob("*.py"))


def test_no_import_circle_runs_at_import_time():
    assert circles(module_level(graph())) == []


def test_a_lazy_import_that_closes_a_circle_says_why_in_a_comment():
    modules = graph()
    edges = everything(modules)
    groups = {m: frozenset(g) for g in circles(edges) for m in g}
    silent = [f"{m}:{i.line} -> {i.target}" for m, found in modules.items() for i in found
              if i.lazy and m in groups and i.target in groups[m] and not i.commented]
    assert silent == []


def test_the_circle_check_finds_the_old_run_analyzers_dispatch_lifecycle_circle(tmp_path):
    """The circle issue 8 found (run -> analyzers -> dispatch -> lifecycle -> run), rebuilt in a
    scratch package: the check above reports it, and a lazy import without a comment."""
    pkg = tmp_path / "rldk_track"
    (pkg / "analyzers").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "run.py").write_text("from rldk_track.analyzers import build_observers\n")
    (pkg / "analyzers" / "__init__.py").write_text("from rldk_track.dispatch import Observer\n")
    (pkg / "dispatch.py").write_text("from rldk_track import lifecycle\n")
    (pkg / "lifecycle.py").write_text("from rldk_track.run import Run\n")
    (pkg / "records.py").write_text("def load():\n    from rldk_track.run import Run\n")
    modules = graph(pkg)
    assert circles(module_level(modules)) == [["rldk_track.analyzers", "rldk_track.dispatch",
                                               "rldk_track.lifecycle", "rldk_track.run"]]
    (pkg / "lifecycle.py").write_text("def quiet():\n    from rldk_track.run import Run\n")
    modules = graph(pkg)
    assert circles(module_level(modules)) == []
    lazy = [i for i in modules["rldk_track.lifecycle"] if i.lazy]
    assert [(i.target, i.commented) for i in lazy] == [("rldk_track.run", False)]
    assert circles(everything(modules)) == [["rldk_track.analyzers", "rldk_track.dispatch",
                                             "rldk_track.lifecycle", "rldk_track.run"]]


@pytest.mark.parametrize("path", modules_in("backends"), ids=lambda p: p.name)
def test_a_backend_imports_no_reader_run_dispatcher_posthoc_or_package_root(path):
    reaching_up = {name for name in targets(path)
                   if name == "rldk_track" or name.startswith(("rldk_track.readers", "rldk_track.run",
                                                               "rldk_track.dispatch", "rldk_track.compare",
                                                               "rldk_track.posthoc"))}
    assert reaching_up == set()


@pytest.mark.parametrize("path", sorted((PACKAGE / "analyzers").rglob("*.py")), ids=lambda p: p.name)
def test_an_analyzer_imports_no_dispatcher_run_or_package_root(path):
    reaching_up = {name for name in targets(path)
                   if name in ("rldk_track", "rldk_track.run", "rldk_track.dispatch", "rldk_track.lifecycle")}
    assert reaching_up == set()


@pytest.mark.parametrize("path", modules_in("readers"), ids=lambda p: p.name)
def test_a_reader_imports_no_backend_but_the_wandb_run_file_parser(path):
    backends = {name for name in targets(path) if name.startswith("rldk_track.backends")}
    assert backends <= {"rldk_track.backends.wandb_offline"}


@pytest.mark.parametrize("path", [*modules_in("vocab"), PACKAGE / "alerts.py", PACKAGE / "eventlog.py",
                                  PACKAGE / "observer.py"], ids=lambda p: p.name)
def test_the_vocabularies_alert_policy_event_log_and_observer_contract_import_only_the_record_model(path):
    assert targets(path) <= {"rldk_track.records"}


def test_the_record_model_imports_no_part_of_rldk_track():
    assert targets(PACKAGE / "records.py") == set()
