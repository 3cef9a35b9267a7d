"""Compare runs from any tracker: statistics, aligned curves, plots and an HTML report.

```python
from rldk_track.compare import compare, load_runs
runs = load_runs(["mlflow://rlhf", "./rldk_runs"])
result = compare(runs, metrics=["reward/mean", "kl/mean"], baseline="grpo-baseline")
print(result.to_text()); result.plot("curves.png"); open("report.html", "w").write(result.to_html())
```

The module itself is callable, so ``rldk_track.compare(frame, ...)`` works whether
``rldk_track.compare`` names this package (after any ``import rldk_track.compare...``) or the
function: both call :func:`compare`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["Comparison", "RunSet", "compare", "load_runs"]


def __getattr__(name: str) -> Any:
    """Heavy parts (numpy, scipy, pandas) load on first use, not on ``import rldk_track.compare``."""
    if name in ("compare", "Comparison"):
        from rldk_track.compare import comparison

        return getattr(comparison, name)
    if name == "load_runs":
        from rldk_track.readers import load_runs

        return load_runs
    if name == "RunSet":
        from rldk_track.readers.runset import RunSet

        return RunSet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from rldk_track.compare.comparison import compare

        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
