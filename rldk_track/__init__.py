"""rldk_track: everything an RLHF run produces, in the experiment tracker you already use.

```python
import rldk_track
with rldk_track.init(backend=["mlflow", "tensorboard"], project="rlhf", config=cfg) as run:
    run.log({"reward/mean": r, "kl/mean": kl}, step=step)
```
"""

from rldk_track.dispatch import DeliveryReport
from rldk_track.run import Run, init

__version__ = "0.1.0"

__all__ = ["DeliveryReport", "Run", "__version__", "init"]
