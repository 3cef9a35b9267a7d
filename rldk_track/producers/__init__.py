"""Producers: threads beside the training loop that emit records through a :class:`~rldk_track.run.Run`.

Analyzers (``rldk_track.analyzers``) are pure: they turn records or files into records and never
hold a run. A producer is the threaded part around one: it watches something the metric stream
does not carry, on its own low-priority thread, and logs what it finds with ``run.emit``:

- :class:`CheckpointMonitor` (``checkpoint_monitor``): checkpoint health of each saved checkpoint,
  with hard-link pins against checkpoint rotation (``checkpoint_pins``);
- :class:`SystemSampler` (``system_sampler``): GPU and host resources, and the memory verdict of
  ``rldk_track.analyzers.memory`` at the end.
"""

from rldk_track.producers.checkpoint_monitor import CheckpointMonitor
from rldk_track.producers.system_sampler import SystemSampler

__all__ = ["CheckpointMonitor", "SystemSampler"]
