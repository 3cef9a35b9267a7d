"""Hard-link pins: a checkpoint's weight files kept readable after the trainer deletes them.

A trainer rotating its checkpoints (``save_total_limit``, OpenRLHF's ``max_ckpt_num``) deletes
older ones before the monitor has read them, sometimes before ``on_save`` of the next one runs.
:class:`Pin` hard-links the weight files into a folder of its own, named
``<host>-<pid>-<step>-<random>`` so that :func:`remove_stale_pins` can tell the pins of a process
of this host that died (they would hold a checkpoint's disk space) from those of one still alive.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import uuid
from pathlib import Path

from rldk_track.analyzers.checkpoint_files import WeightFiles
from rldk_track.processes import process_alive

log = logging.getLogger("rldk_track")


class Pin:
    """Hard links to a checkpoint's weight files in a folder of ``root``, so they outlive a trainer
    deleting the checkpoint (``save_total_limit``). Where linking fails (another file system, no
    permission) the original files are used as they are."""

    _reported_in_place = False

    def __init__(self, weights: WeightFiles, folder: Path | None) -> None:
        self.weights = weights
        self._folder = folder

    @classmethod
    def create(cls, weights: WeightFiles, step: int, root: Path) -> "Pin":
        """Link ``weights`` (saved at ``step``) into a new folder of ``root``; in place if that fails."""
        folder = root / f"{socket.gethostname()}-{os.getpid()}-{step}-{uuid.uuid4().hex[:6]}"
        try:
            folder.mkdir(parents=True)
            for source in (*weights.files, *weights.extra):
                os.link(source, folder / source.name)
        except OSError as exc:
            if not cls._reported_in_place:
                cls._reported_in_place = True
                log.info("rldk_track: cannot hard-link %s into %s (%s); checkpoints are read in place, so one "
                         "deleted early by the trainer is not analysed (pass pin_dir= on their file system)",
                         weights.origin, root, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return cls(weights, None)
        files = tuple(folder / f.name for f in weights.files)
        return cls(WeightFiles(weights.origin, files, weights.format), folder)

    def release(self) -> None:
        """Remove the links (and ``root``, once no pin is left in it)."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            try:
                self._folder.parent.rmdir()  # only when empty
            except OSError:
                pass
            self._folder = None


def remove_stale_pins(root: Path) -> None:
    """Pins left by a process of this host that died (they would hold a checkpoint's disk space)."""
    if not root.is_dir():
        return
    host = socket.gethostname()
    for folder in root.iterdir():
        parts = folder.name.rsplit("-", 3)  # host-pid-step-random
        if len(parts) == 4 and parts[0] == host and parts[1].isdigit() and not process_alive(int(parts[1])):
            shutil.rmtree(folder, ignore_errors=True)
