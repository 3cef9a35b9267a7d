"""The OpenRLHF PPO command line, recorded by rldk_track: one word in front of your command.

    rldk-track openrlhf --backend mlflow --tracking-uri http://127.0.0.1:5000 --dir ./rldk_runs \\
        -- python -m openrlhf.cli.train_ppo_ray --actor.model_name_or_path Qwen/Qwen2.5-0.5B-Instruct ...

Everything after ``--`` is OpenRLHF's own command, unchanged. The launcher starts Ray with a
worker setup hook that records the run inside OpenRLHF's trainer actor (docs/openrlhf.md).

Honest note: PPO with OpenRLHF needs GPUs (DeepSpeed, vLLM, flash-attn); on a CPU machine it
cannot train. So this example does everything short of training: it builds the command, parses
the launcher's part with rldk-track's own parser, parses OpenRLHF's part with OpenRLHF's own
argument parser (rebuilt from the installed ``openrlhf/cli/train_ppo_ray.py``, whose parser lives
under ``if __name__ == "__main__"`` and whose module imports vLLM), and prints the Ray
``runtime_env`` the launcher would use. A misspelled flag on either side fails here, in a second,
instead of after Ray and the models have started. On a GPU machine, run the printed command.

    python examples/openrlhf_command.py            # check and print the command
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

OPENRLHF_MODULE = "openrlhf.cli.train_ppo_ray"

#: rldk-track's options: where the run is recorded.
LAUNCHER_ARGS = [
    "--backend", "mlflow", "--tracking-uri", "http://127.0.0.1:5000",
    "--project", "rlhf-ppo", "--dir", "./rldk_runs", "--tag", "team=alignment",
]
#: OpenRLHF's own PPO flags (a one-GPU, colocated GRPO-style run of a 0.5B model), unchanged.
OPENRLHF_ARGS = [
    "--actor.model_name_or_path", "Qwen/Qwen2.5-0.5B-Instruct",
    "--data.prompt_dataset", "OpenRLHF/prompt-collection-v0.1", "--data.input_key", "context_messages",
    "--data.apply_chat_template",
    "--reward.remote_url", "http://127.0.0.1:5000/get_reward",
    "--actor.num_gpus_per_node", "1", "--ref.num_gpus_per_node", "1", "--vllm.num_engines", "1",
    "--train.colocate_all", "--vllm.gpu_memory_utilization", "0.5",
    "--algo.advantage.estimator", "group_norm", "--rollout.n_samples_per_prompt", "4",
    "--rollout.batch_size", "16", "--train.batch_size", "64", "--algo.kl.init_coef", "0.01",
    "--actor.adam.lr", "5e-7", "--ds.zero_stage", "2", "--ds.param_dtype", "bf16",
    "--logger.logging_steps", "1", "--ckpt.path", "./ckpt/ppo", "--logger.wandb.run_name", "ppo-qwen0.5b",
]


def command(launcher_args: Sequence[str] = LAUNCHER_ARGS, openrlhf_args: Sequence[str] = OPENRLHF_ARGS) -> list[str]:
    """``rldk-track openrlhf LAUNCHER_ARGS -- python -m openrlhf.cli.train_ppo_ray OPENRLHF_ARGS``."""
    return ["rldk-track", "openrlhf", *launcher_args, "--", "python", "-m", OPENRLHF_MODULE, *openrlhf_args]


def openrlhf_parser(module: str = OPENRLHF_MODULE) -> argparse.ArgumentParser:
    """OpenRLHF's own argument parser for ``module``: the statements of its ``__main__`` block
    that build the parser (everything before ``parse_args``), after the module's standard-library
    imports, run without importing the module itself (nor Ray, vLLM, DeepSpeed)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(f"{module} is not installed (pip install openrlhf; see docs/openrlhf.md)")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    main = next(node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test))
    building: list[ast.stmt] = [
        node for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom)) and all(_stdlib(name) for name in _imported(node))
    ]
    for statement in main.body:
        if "parse_args" in ast.unparse(statement):
            break
        building.append(statement)
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module(building, type_ignores=[]), spec.origin, "exec"), namespace)
    return namespace["parser"]


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    return [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]


def _stdlib(name: str) -> bool:
    return name.partition(".")[0] in sys.stdlib_module_names


def check(argv: Sequence[str]) -> dict[str, Any]:
    """Parse both halves of an ``rldk-track openrlhf ...`` command as the real tools would, and
    return what would happen: the recording settings, whether Ray is started here, OpenRLHF's
    parsed (nested) arguments and the Ray ``runtime_env``. Raises SystemExit on a bad flag."""
    from openrlhf.utils.config import hierarchize

    from rldk_track.cli import build_parser
    from rldk_track.integrations.openrlhf import ray_runtime_env
    from rldk_track.integrations.openrlhf_launch import python_target, settings_from_args, uses_ray

    if list(argv[:2]) != ["rldk-track", "openrlhf"]:
        raise ValueError("the command starts with: rldk-track openrlhf")
    launcher = build_parser().parse_args(list(argv[1:]))
    settings = settings_from_args(launcher)
    training = launcher.command[1:] if launcher.command[:1] == ["--"] else list(launcher.command)
    target = python_target(training)
    if target is None or target[1] != OPENRLHF_MODULE:
        raise ValueError(f"after -- comes: python -m {OPENRLHF_MODULE} ...")
    openrlhf_args = hierarchize(openrlhf_parser(target[1]).parse_args(target[2]))
    return {
        "settings": settings,
        "starts_ray": uses_ray(training, launcher.ray),
        "openrlhf_args": openrlhf_args,
        "runtime_env": ray_runtime_env(settings, run_id="<new run id>"),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    argv = list(argv) if argv is not None else command()
    plan = check(argv)
    args, settings = plan["openrlhf_args"], plan["settings"]
    print(shlex.join(argv), "\n")
    print(f"records into {settings.backend} (project {settings.init.get('project')}, "
          f"run name {args.logger.wandb.run_name!r}, event log in {settings.init.get('dir')})")
    print(f"starts Ray here with the worker setup hook: {plan['starts_ray']} "
          f"({plan['runtime_env']['worker_process_setup_hook']})")
    print(f"OpenRLHF accepted its flags: actor {args.actor.model_name_or_path}, "
          f"{args.algo.advantage.estimator} advantages, KL coef {args.algo.kl.init_coef}")
    print("On a GPU machine, run the command above; on CPU, OpenRLHF cannot train.")
    return plan


if __name__ == "__main__":
    main()
