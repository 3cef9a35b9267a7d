"""A plain PyTorch RL loop recorded with rldk_track: ``init``, ``log``, ``timer`` and ``alert``.

The policy is a softmax over 8 actions trained with REINFORCE on a bandit whose best action is 3;
each step logs the mean reward, the KL to the starting policy, the entropy and the loss, times the
rollout and the update, and raises an alert of its own when the policy has all but stopped
exploring. The default analyzers watch the same stream (KL drift, entropy collapse, NaN...).

    python examples/plain_loop.py                      # records into ./rldk_runs (the event log)
    python examples/plain_loop.py --backend mlflow --backend tensorboard --lr 0.5
    rldk-track compare ./rldk_runs                     # then look at it
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import torch

import rldk_track

ACTIONS = 8
BEST_ACTION = 3
#: Our own rule: below this entropy (nats) the policy has stopped exploring.
ENTROPY_FLOOR = 0.5


def reward_of(actions: torch.Tensor) -> torch.Tensor:
    """1 for the best action, 0.2 for its neighbours, 0 otherwise."""
    distance = (actions - BEST_ACTION).abs()
    return torch.where(distance == 0, 1.0, torch.where(distance == 1, 0.2, 0.0))


def train(
    steps: int = 60,
    lr: float = 0.1,
    batch_size: int = 64,
    seed: int = 0,
    backend: str | Sequence[str] | None = None,
    run_name: str | None = None,
    dir: str | Path | None = None,
) -> str:
    """Train the bandit policy, recording every step; returns the run id."""
    torch.manual_seed(seed)
    logits = torch.zeros(ACTIONS, requires_grad=True)
    start = torch.distributions.Categorical(logits=logits.detach().clone())
    optimizer = torch.optim.SGD([logits], lr=lr)
    config = {"algo": "reinforce", "lr": lr, "batch_size": batch_size, "steps": steps, "seed": seed}

    with rldk_track.init(backend, run_name=run_name or f"bandit-lr{lr:g}", config=config, dir=dir,
                         tags={"example": "plain_loop"}, analyzers="default") as run:
        alerted = False
        for step in range(1, steps + 1):
            with run.timer("rollout"):  # logs perf/rollout_s at this step
                policy = torch.distributions.Categorical(logits=logits)
                actions = policy.sample((batch_size,))
                rewards = reward_of(actions)
            with run.timer("update"):
                advantage = rewards - rewards.mean()
                loss = -(policy.log_prob(actions) * advantage).mean()
                optimizer.zero_grad()
                loss.backward()
                grad_norm = logits.grad.norm()
                optimizer.step()
            with torch.no_grad():
                policy = torch.distributions.Categorical(logits=logits)
                entropy = policy.entropy()
                kl = torch.distributions.kl_divergence(policy, start)
            # Tensors are fine: the Run turns them into floats (no other work on this thread).
            run.log({"reward/mean": rewards.mean(), "reward/std": rewards.std(), "kl/mean": kl,
                     "entropy/mean": entropy, "loss/policy": loss, "grad/norm": grad_norm}, step=step)
            if entropy < ENTROPY_FLOOR and not alerted:
                run.alert("exploration_stopped", f"policy entropy {entropy:.3f} fell below {ENTROPY_FLOOR}",
                          severity="warning", step=step, metric="entropy/mean", value=float(entropy),
                          threshold=ENTROPY_FLOOR)
                alerted = True
        run.log_summary({"final_reward": float(rewards.mean()), "best_action_prob": float(policy.probs[BEST_ACTION])})
        return run.id


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", help="jsonl (default), mlflow, wandb, tensorboard...")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--dir", default=None, help="run directory (default ./rldk_runs)")
    args = parser.parse_args(argv)
    run_id = train(steps=args.steps, lr=args.lr, backend=args.backend, dir=args.dir)
    print(f"recorded run {run_id}")


if __name__ == "__main__":
    main()
