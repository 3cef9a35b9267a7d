"""``rldk-track openrlhf [options] -- COMMAND ...``: run an OpenRLHF training command, recorded."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from rldk_track.integrations.openrlhf_launch import add_arguments, run_from_args

    p = sub.add_parser(
        "openrlhf",
        help="run an OpenRLHF command (PPO on Ray, or SFT/DPO/RM under deepspeed/torchrun) with tracking",
        description="Change one word of your command: rldk-track openrlhf --backend mlflow -- "
        "python -m openrlhf.cli.train_ppo_ray ... (see docs/openrlhf.md).",
    )
    add_arguments(p)
    p.set_defaults(func=run_from_args)
