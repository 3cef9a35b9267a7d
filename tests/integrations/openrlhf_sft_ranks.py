"""One rank of a 2-process SFT run on gloo, run by test_openrlhf_distributed.py under
``rldk-track openrlhf --per-rank -- torchrun --nproc_per_node 2 ... openrlhf_sft_ranks.py MODEL``.

Nothing here installs rldk_track: the launcher's sitecustomize did, in this process, before
OpenRLHF was imported. Each rank trains OpenRLHF's real ``SFTTrainer.fit`` on its own data shard;
the strategy all-reduces the logged values over gloo (as DeepSpeed's does over NCCL). Rank 1
holds an extra 300 MB, so the ranks' peak memory differs.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import torch.distributed as dist  # noqa: E402

from rldk_testsupport import openrlhf_minimal as om  # noqa: E402
from rldk_testsupport.openrlhf_stubs import cuda_only_stand_ins  # noqa: E402


def main(model_dir: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    with cuda_only_stand_ins():
        import openrlhf.trainer.sft_trainer  # noqa: F401
    from rldk_track.integrations.openrlhf import is_patched

    assert is_patched(openrlhf.trainer.sft_trainer.SFTTrainer), "the launcher's hook patches every rank"
    ballast = bytearray(300 * 1024 * 1024 if rank == 1 else 0)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page: it counts in the resident set
    args = om.openrlhf_args()
    trainer = om.sft_trainer(model_dir, args, train_steps=4, eval_batches=0, seed=rank)
    trainer.fit(args)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
