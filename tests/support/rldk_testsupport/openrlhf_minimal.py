"""What OpenRLHF's real trainers need around them to run on a CPU, and nothing of their own code.

- :func:`openrlhf_args`: OpenRLHF's nested arguments, built with OpenRLHF's own ``hierarchize``.
- :class:`TorchStrategy`: plain PyTorch (and ``torch.distributed`` when it is initialised) in place
  of ``DeepspeedStrategy``: backward/step, all-reduce, rank, and ``save_model`` writing an HF
  checkpoint with ``save_pretrained`` as OpenRLHF's does.
- :class:`ActorGroupStandIn`: the PPO controller's handle on its Ray actor group; its
  ``save_checkpoint`` writes the HF checkpoint that the policy actors would write.
- :func:`sft_trainer`: OpenRLHF's real ``SFTTrainer`` around a real OpenRLHF ``Actor`` (a tiny
  GPT-2 loaded from disk), ready for its real ``fit``.
- :func:`ppo_trainer_actor_class`: a Ray actor that builds OpenRLHF's real ``BasePPOTrainer``
  inside the worker and calls its ``save_logs_and_checkpoints``, as the ``PPOTrainer`` actor does.

Heavy imports (torch, transformers, ray, openrlhf) happen inside the functions: this module is
loaded as a pytest plugin by every test run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

TINY_VOCAB = 64


def openrlhf_args(**overrides: Any) -> Any:
    """OpenRLHF's hierarchical args (``args.logger.logging_steps``...). Keys use ``__`` for the
    dots of OpenRLHF's flags: ``ckpt__save_steps=2`` is ``--ckpt.save_steps 2``."""
    from openrlhf.utils.config import hierarchize

    flat: dict[str, Any] = {
        "logger.logging_steps": 1,
        "logger.wandb.key": None,
        "logger.wandb.project": "openrlhf_test",
        "logger.wandb.run_name": "openrlhf-test-run",
        "logger.tensorboard_dir": None,
        "ckpt.path": "./ckpt",
        "ckpt.save_steps": -1,
        "ckpt.save_hf": False,
        "ckpt.max_num": 3,
        "ckpt.max_mem": 1000,
        "ckpt.best_metric_key": "",
        "eval.steps": -1,
        "algo.kl.init_coef": 0.01,
        "algo.kl.target": None,
        "algo.kl.horizon": 10000,
        "algo.advantage.estimator": "reinforce",
        "model.aux_loss_coef": 0.0,
        "ds.packing_samples": False,
        "train.batch_size": 2,
        "rollout.batch_size": 2,
        "rollout.n_samples_per_prompt": 1,
    }
    flat.update({key.replace("__", "."): value for key, value in overrides.items()})
    return hierarchize(argparse.Namespace(**flat))


def save_tiny_causal_lm(path: str | os.PathLike[str]) -> Path:
    """A randomly initialised 1-layer, 16-wide GPT-2 saved in HF format (safetensors)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=TINY_VOCAB, n_positions=32)
    GPT2LMHeadModel(config).save_pretrained(path)
    return Path(path)


class TorchStrategy:
    """The parts of OpenRLHF's ``DeepspeedStrategy`` that its trainers call, in plain PyTorch."""

    accumulated_gradient = 1
    ring_attn_group = None

    def __init__(self, args: Any) -> None:
        self.args = args

    @staticmethod
    def _dist() -> Any:
        import torch.distributed as dist

        return dist if dist.is_available() and dist.is_initialized() else None

    def is_rank_0(self) -> bool:
        return self.get_rank() == 0

    def get_rank(self) -> int:
        dist = self._dist()
        return dist.get_rank() if dist else 0

    @property
    def world_size(self) -> int:
        dist = self._dist()
        return dist.get_world_size() if dist else 1

    def all_reduce(self, data: Any, op: str = "mean") -> Any:
        import torch

        if isinstance(data, dict):
            return {k: self.all_reduce(v, op) for k, v in data.items()}
        dist = self._dist()
        if dist is None:
            return data
        tensor = torch.tensor([float(data)], dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        if op == "mean":
            tensor /= dist.get_world_size()
        return tensor.item()

    def backward(self, loss: Any, model: Any, optimizer: Any, **kwargs: Any) -> None:
        loss.backward()

    def optimizer_step(self, optimizer: Any, model: Any, scheduler: Any, name: str = "model", **kwargs: Any) -> None:
        import torch

        self._grad_norm = float(torch.nn.utils.clip_grad_norm_(self._unwrap(model).parameters(), float("inf")))
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        engine = getattr(model, "model", model)
        engine.global_steps = getattr(engine, "global_steps", 0) + 1  # DeepSpeed engine's counter

    def get_grad_norm(self, model: Any) -> float:
        return getattr(self, "_grad_norm", 0.0)

    def save_model(self, model: Any, tokenizer: Any, output_dir: str, **kwargs: Any) -> None:
        if self.is_rank_0():
            self._unwrap(model).save_pretrained(output_dir)

    def save_ckpt(self, model: Any, save_dir: str, tag: str | None = None, *args: Any, **kwargs: Any) -> None:
        import torch

        if self.is_rank_0():
            folder = Path(save_dir) / (tag or "latest")
            folder.mkdir(parents=True, exist_ok=True)
            torch.save({"module": self._unwrap(model).state_dict()}, folder / "mp_rank_00_model_states.pt")

    @staticmethod
    def _unwrap(model: Any) -> Any:
        while hasattr(model, "model") and not hasattr(model, "save_pretrained"):
            model = model.model
        return getattr(model, "module", model)


def sft_batches(count: int, batch_size: int = 2, length: int = 8, seed: int = 0) -> list[tuple[Any, Any, Any]]:
    """``(inputs, attention_masks, loss_masks)`` micro-batches shaped as OpenRLHF's SFT dataset
    collates them (``batch x 1 x length``)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        inputs = torch.randint(0, TINY_VOCAB, (batch_size, 1, length), generator=generator)
        mask = torch.ones_like(inputs)
        loss_mask = mask.clone()
        loss_mask[..., : length // 2] = 0  # the prompt half carries no loss
        batches.append((inputs, mask, loss_mask))
    return batches


class BatchList(list):
    """A list of batches that OpenRLHF's trainers accept as a dataloader."""

    sampler = None


def sft_trainer(model_dir: str | os.PathLike[str], args: Any, *, train_steps: int, eval_batches: int = 2,
                save_hf_ckpt: bool = False, seed: int = 0) -> Any:
    """OpenRLHF's ``SFTTrainer`` (real ``__init__``) on a real OpenRLHF ``Actor``."""
    import torch
    from openrlhf.models import Actor
    from openrlhf.trainer.sft_trainer import SFTTrainer

    torch.manual_seed(seed)
    actor = Actor(str(model_dir), attn_implementation="eager", param_dtype="bf16")
    actor.model.global_steps = 0
    optimizer = torch.optim.SGD(actor.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return SFTTrainer(
        actor,
        TorchStrategy(args),
        optimizer,
        BatchList(sft_batches(train_steps, seed=seed)),
        BatchList(sft_batches(eval_batches, seed=seed + 1)) if eval_batches else None,
        scheduler,
        max_epochs=1,
        batch_size=2,
        tokenizer=None,
        save_hf_ckpt=save_hf_ckpt,
        disable_ds_ckpt=True,
    )


class ActorGroupStandIn:
    """Stands for ``RayActorGroup`` of the policy actors as the PPO controller uses it: records the
    methods called and, for ``save_checkpoint`` with ``--ckpt.save_hf``, writes the HF checkpoint
    ``{ckpt.path}/{tag}_hf`` that ``PolicyModelActor.save_checkpoint`` writes."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def async_run_method(self, method_name: str, **kwargs: Any) -> list[Any]:
        self.calls.append((method_name, kwargs))
        if method_name == "save_checkpoint" and self.args.ckpt.save_hf:
            save_tiny_causal_lm(Path(self.args.ckpt.path) / f"{kwargs['tag']}_hf")
        return []


def ppo_trainer(args: Any) -> Any:
    """OpenRLHF's real ``BasePPOTrainer`` (its own ``__init__``: KL controller, experience maker,
    loggers) with :class:`ActorGroupStandIn` as its actor group and no critic."""
    from openrlhf.trainer.ppo_trainer import BasePPOTrainer

    strategy = TorchStrategy(args)
    return BasePPOTrainer(strategy, ActorGroupStandIn(args), None, None, None, None, tokenizer=None)


def ppo_logs(step: int, kl: float = 0.01, reward: float = 0.5) -> dict[str, Any]:
    """A ``status`` dict with the keys and value types that ``PPOTrainer.fit`` hands to
    ``save_logs_and_checkpoints`` (GRPO-style run, no critic)."""
    return {
        "policy_loss": -0.02 + 0.001 * step,
        "actor_lr": 1e-6,
        "actor_grad_norm": 0.8,
        "ppo_clip_ratio": 0.05,
        "ppo_kl": 0.001,
        "kl": kl,
        "reward": reward,
        "score": reward,
        "return": reward - kl,
        "response_length": 120.0 + step,
        "total_length": 180.0 + step,
        "truncated": 0.0,
        "timing/make_experience": 1.5,
        "timing/ppo_train": 2.0,
        "timing/broadcast": 0.3,
        "timing/generation": 4.0,
        "timing/step_total": 7.8,
        "rollout/reward_mean": reward,
        "rollout/reward_std": 0.1,
        "rollout/response_length_mean": 120.0 + step,
        "rollout/truncated_rate": 0.0,
        "rollout/num_samples": 8.0,
        "generated_samples": [f"sample text of step {step}", reward],
    }


def ppo_trainer_actor_class() -> Any:
    """A Ray actor class that runs OpenRLHF's ``BasePPOTrainer`` in its worker process. OpenRLHF is
    imported inside the actor (with the CUDA-only stand-ins), as the real trainer actor imports it
    when Ray loads its class."""
    import ray

    @ray.remote(num_cpus=0)
    class PPOTrainerActor:
        def __init__(self, ckpt_path: str) -> None:
            from rldk_testsupport.openrlhf_stubs import cuda_only_stand_ins

            with cuda_only_stand_ins():
                import openrlhf.trainer.ppo_trainer  # noqa: F401
            self.trainer = ppo_trainer(openrlhf_args(ckpt__path=ckpt_path))

        def save_logs(self, steps: list[int]) -> int:
            for step in steps:
                self.trainer.save_logs_and_checkpoints(step, ppo_logs(step), {"global_step": step})
            return os.getpid()

        def method_is_patched(self) -> bool:
            from openrlhf.trainer.ppo_trainer import BasePPOTrainer

            return getattr(BasePPOTrainer.save_logs_and_checkpoints, "__rldk_original__", None) is not None

    return PPOTrainerActor
