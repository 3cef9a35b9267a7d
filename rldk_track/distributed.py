"""Which process of a distributed job this is, without starting anything distributed."""

from __future__ import annotations

import os
import sys


def rank_and_world_size() -> tuple[int, int]:
    """Global rank and world size: from an initialised ``torch.distributed`` group, else from the
    launcher's environment (``RANK``/``WORLD_SIZE`` as torchrun, accelerate, deepspeed and Ray
    Train set them, then ``LOCAL_RANK``), else ``(0, 1)``."""
    if "torch" in sys.modules:
        dist = sys.modules["torch"].distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    for rank_var, size_var in (("RANK", "WORLD_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("LOCAL_RANK", "LOCAL_WORLD_SIZE")):
        if os.environ.get(rank_var, "").strip().isdigit():
            size = os.environ.get(size_var, "1").strip()
            return int(os.environ[rank_var]), int(size) if size.isdigit() else 1
    return 0, 1
