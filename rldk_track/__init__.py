"""rldk_track: everything an RLHF run produces, in the experiment tracker you already use.

```python
import rldk_track
with rldk_track.init(backend=["mlflow", "tensorboard"], project="rlhf", config=cfg) as run:
    run.log({"reward/mean": r, "kl/mean": kl}, step=step)

runs = rldk_track.load_runs(["rldk_runs", "mlflow://rlhf"])      # read back from any tracker
print(rldk_track.compare(runs, metrics=["reward/mean"], baseline="run-a"))
```
"""

from typing import Any

from rldk_track.dispatch import DeliveryReport
from rldk_track.run import Run, init
from rldk_track.version import __version__

__all__ = ["DeliveryReport", "Run", "__version__", "compare", "init", "load_runs"]


def __getattr__(name: str) -> Any:
    """``load_runs`` and ``compare`` import pandas/scipy, so they load on first use."""
    if name == "load_runs":
        from rldk_track.readers import load_runs

        return load_runs
    if name == "compare":
        import importlib

        return importlib.import_module("rldk_track.compare")  # a callable module: compare(runs, ...)
    raise AttributeError(f"module 'rldk_track' has no attribute {name!r}")
