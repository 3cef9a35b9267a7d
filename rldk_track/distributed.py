"""Which process of a distributed job this is, without starting anything distributed."""

from __future__ import annotations

import os
import sys


def rank_and_world_size() -> tuple[int, int]:
    """Global rank and world size: from an initialised ``torch.distributed`` group, else from the
    launcher's environment (``RANK``/``WORLD_SIZE`` as torchrun, accelerate, deepspeed and Ray
    Train set them, then ``LOCAL_RANK``, then Slurm's ``SLURM_PROCID``), else ``(0, 1)``. Without
    Slurm's task id every ``srun`` task would be rank 0 and, sharing the Slurm-derived run id, all
    but one would meet the run lock."""
    if "torch" in sys.modules:
        dist = sys.modules["torch"].distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    for rank_var, size_var in (("RANK", "WORLD_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE")):
        rank = _env_int(rank_var)
        if rank is not None:
            return rank, _env_int(size_var) or 1
    local_rank = _env_int("LOCAL_RANK")
    if local_rank is not None:  # only a local rank: on node > 0 it is not the global rank 0
        local_size = _env_int("LOCAL_WORLD_SIZE") or 1
        node = _env_int("NODE_RANK") or _env_int("GROUP_RANK") or 0
        return node * local_size + local_rank, max(_env_int("WORLD_SIZE") or 1, (node + 1) * local_size)
    slurm_task = _env_int("SLURM_PROCID")
    if slurm_task is not None:
        return slurm_task, _env_int("SLURM_NTASKS") or 1
    return 0, 1


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else None
