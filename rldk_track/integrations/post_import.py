"""Run a function right after a module is imported, wherever and whenever that happens.

Integrations patch a framework's classes. Patching at install time would mean importing the
framework (seconds of torch/deepspeed imports) in every process that merely *might* train, such
as each Ray worker started with our setup hook. Instead :func:`when_imported` patches a module
that is already loaded at once, and otherwise lets a finder on ``sys.meta_path`` patch it the
moment some code imports it, before that code sees the module.
"""

from __future__ import annotations

import importlib.abc
import logging
import sys
import threading
from types import ModuleType
from typing import Any, Callable, Sequence

log = logging.getLogger("rldk_track")

Callback = Callable[[ModuleType], None]


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a watched module it asks the other finders for the spec and wraps
    the spec's loader so that the callbacks run after the module's code has executed."""

    def __init__(self) -> None:
        self.callbacks: dict[str, list[Callback]] = {}
        self._resolving = threading.local()

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname not in self.callbacks or getattr(self._resolving, "name", None) == fullname:
            return None
        self._resolving.name = fullname
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._resolving.name = None
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run_callbacks = self.run_callbacks
        exec_module = loader.exec_module

        def exec_then_patch(module: ModuleType) -> None:
            exec_module(module)
            run_callbacks(fullname, module)

        # Source loaders are made per module, so the override touches this one import only.
        loader.exec_module = exec_then_patch
        return spec

    def run_callbacks(self, name: str, module: ModuleType) -> None:
        for callback in list(self.callbacks.get(name, ())):
            try:
                callback(module)
            except Exception as exc:  # a failed patch must not break the user's import
                log.warning("rldk_track: could not patch %s after import: %s: %s", name, type(exc).__name__, exc)


_finder = _PostImportFinder()


def when_imported(module_name: str, callback: Callback) -> None:
    """Call ``callback(module)`` now if ``module_name`` is imported, else right after its import."""
    _finder.callbacks.setdefault(module_name, [])
    if callback not in _finder.callbacks[module_name]:
        _finder.callbacks[module_name].append(callback)
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    module = sys.modules.get(module_name)
    if module is not None:
        _finder.run_callbacks(module_name, module)


def forget(module_name: str, callback: Callback) -> None:
    """Stop watching ``module_name`` for ``callback`` (the finder leaves when nothing is watched)."""
    callbacks = _finder.callbacks.get(module_name, [])
    if callback in callbacks:
        callbacks.remove(callback)
    if not callbacks:
        _finder.callbacks.pop(module_name, None)
    if not _finder.callbacks and _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
