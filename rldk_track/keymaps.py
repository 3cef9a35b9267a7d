"""One metric vocabulary across frameworks, so TRL and OpenRLHF runs line up in a tracker.

:func:`canonicalize` puts each key it knows under its canonical name (``names="canonical"``: each
quantity once in a tracker; the integrations record the renames as :data:`NAMES_ARTIFACT`), next
to its original key (``"both"``), or leaves the keys as logged (``"original"``). :func:`resolve`
finds a metric by either name. The tables below are the single source of the mapping;
``docs/metrics.md`` documents them.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Callable, Collection, Iterable, Literal, Mapping

#: The canonical names and what they mean.
CANONICAL: dict[str, str] = {
    "reward/mean": "mean reward (score) of the batch's completions",
    "reward/std": "standard deviation of the reward",
    "reward/<fn>/mean": "mean of one reward function / component",
    "reward/chosen": "implicit reward of chosen responses (preference training)",
    "reward/rejected": "implicit reward of rejected responses",
    "reward/margin": "chosen minus rejected reward",
    "reward/accuracy": "fraction of pairs where chosen beats rejected",
    "kl/mean": "KL divergence between policy and reference",
    "kl/approx": "approximate KL between the old and the updated policy (PPO)",
    "kl/coef": "KL penalty coefficient",
    "entropy/mean": "mean token entropy of the policy",
    "clip/ratio": "fraction of tokens whose probability ratio was clipped",
    "loss/total": "the optimized loss",
    "loss/policy": "policy (actor) loss",
    "loss/value": "value (critic) loss",
    "grad/norm": "gradient norm before clipping",
    "lr": "learning rate",
    "length/response_mean": "mean completion length in tokens",
    "length/truncated_ratio": "fraction of completions cut at the length limit",
    "perf/<stage>_s": "seconds spent in a stage (rollout, reward, update, eval...)",
}

_TRANSFORMERS = {
    "loss": "loss/total",
    "grad_norm": "grad/norm",
    "learning_rate": "lr",
    "train_loss": "loss/total",
}

TRL: dict[str, str] = {
    **_TRANSFORMERS,
    # GRPO / RLOO / online trainers
    "reward": "reward/mean",
    "reward_std": "reward/std",
    "kl": "kl/mean",
    "entropy": "entropy/mean",
    "policy_loss": "loss/policy",
    "clip_ratio/region_mean": "clip/ratio",
    "clip_ratio/low_mean": "clip/low_ratio",
    "clip_ratio/high_mean": "clip/high_ratio",
    "completions/mean_length": "length/response_mean",
    "completions/min_length": "length/response_min",
    "completions/max_length": "length/response_max",
    "completions/clipped_ratio": "length/truncated_ratio",
    "completions/mean_terminated_length": "length/terminated_mean",
    "completions/min_terminated_length": "length/terminated_min",
    "completions/max_terminated_length": "length/terminated_max",
    "clip_ratio/low_min": "clip/low_min",
    "clip_ratio/high_max": "clip/high_max",
    "step_time": "perf/step_s",
    "entropy_coef": "entropy/coef",
    "aux_loss": "loss/aux",
    "frac_reward_zero_std": "reward/frac_zero_std",
    "num_tokens": "tokens/total",
    "beta": "kl/coef",
    # DPO / KTO / reward modelling
    "rewards/chosen": "reward/chosen",
    "rewards/rejected": "reward/rejected",
    "rewards/margins": "reward/margin",
    "rewards/accuracies": "reward/accuracy",
    "logps/chosen": "logp/chosen",
    "logps/rejected": "logp/rejected",
    "mean_token_accuracy": "accuracy/token",
    "accuracy": "reward/accuracy",
    "margin": "reward/margin",
    "mean_reward": "reward/mean",
    "min_reward": "reward/min",
    "max_reward": "reward/max",
    # legacy PPO (TRL <= 0.x PPOTrainer / PPOv2)
    "objective/kl": "kl/mean",
    "objective/entropy": "entropy/mean",
    "objective/scores": "reward/mean",
    "objective/rlhf_reward": "reward/rlhf_mean",
    "objective/non_score_reward": "reward/kl_penalty",
    "objective/kl_coef": "kl/coef",
    "objective/scores_margin": "reward/score_margin",
    "val/contain_eos_token": "length/eos_ratio",
    "policy/approxkl_avg": "kl/approx",
    "policy/clipfrac_avg": "clip/ratio",
    "policy/entropy_avg": "entropy/policy_avg",
    "loss/policy_avg": "loss/policy",
    "loss/value_avg": "loss/value",
    "val/clipfrac_avg": "clip/value_ratio",
    "ppo/mean_scores": "reward/mean",
    "ppo/policy/clipfrac": "clip/ratio",
    "ppo/policy/entropy": "entropy/mean",
    "ppo/loss/policy": "loss/policy",
    "ppo/loss/value": "loss/value",
    "ppo/learning_rate": "lr",
    "tokens/responses_len_mean": "length/response_mean",
}

OPENRLHF: dict[str, str] = {
    "policy_loss": "loss/policy",
    "critic_loss": "loss/value",
    "actor_lr": "lr",
    "critic_lr": "lr/critic",
    "actor_grad_norm": "grad/norm",
    "critic_grad_norm": "grad/critic_norm",
    "ppo_clip_ratio": "clip/ratio",
    "ppo_kl": "kl/approx",
    "kl": "kl/mean",
    "kl_coef": "kl/coef",
    "reward": "reward/mean",
    "score": "reward/score_mean",
    "return": "return/mean",
    "values": "value/mean",
    "response_length": "length/response_mean",
    "total_length": "length/total_mean",
    "truncated": "length/truncated_ratio",
    "entropy_loss": "entropy/mean",
    "entropy": "entropy/mean",
    "timing/step_total": "perf/step_s",
    "rollout/reward_std": "reward/std",
    # SFT / DPO / RM trainers
    "gpt_loss": "loss/lm",
    "loss": "loss/total",
    "loss_mean": "loss/total",
    "nll_loss": "loss/nll",
    "aux_loss": "loss/aux",
    "grad_norm": "grad/norm",
    "chosen_reward": "reward/chosen",
    "reject_reward": "reward/rejected",
    "acc": "reward/accuracy",
    "acc_mean": "reward/accuracy",
    "reward_mean": "reward/mean",
    "reward_std": "reward/std",
    "lr": "lr",
}

#: TRL's profiled blocks (``trl.extras.profiling``: ``profiling/Time taken: <Trainer>.<block>``)
#: and the stage of ``perf/<stage>_s`` each is recorded under. A block that is a reward function
#: becomes ``perf/reward/<fn>_s``; any other block ``perf/<block>_s`` (lower case, ``_`` for the rest).
#: TRL's own keys, in a run TRL logged itself, get the same canonical names (:data:`TRL_PROFILING_KEY`),
#: except that a reward function's block, whose name only the trainer knows, is ``perf/<fn>_s``.
TRL_PROFILING: dict[str, str] = {
    "transformers.generate": "generate",
    "transformers.generate_batch": "generate",
    "vLLM.generate": "generate",
    "sync_weights": "sync_weights",
    "_calculate_rewards": "reward",
    "_prepare_inputs": "prepare_inputs",
    "_get_per_token_logps_and_entropies": "logps",
    "compute_loss": "compute_loss",
}


def trl_profiling_metric(block: str, reward_funcs: Collection[str] = ()) -> str:
    """The ``perf/*`` name of TRL's profiled ``block`` (the part after ``<Trainer>.``), given the
    trainer's reward function names (``trainer.reward_func_names``)."""
    if block in reward_funcs:
        return f"perf/reward/{block}_s"
    stage = TRL_PROFILING.get(block) or re.sub(r"[^0-9A-Za-z]+", "_", block).strip("_").lower() or "block"
    return f"perf/{stage}_s"


#: The key TRL's ``ProfilingContext`` logs itself to W&B/MLflow/trackio when ``report_to`` names
#: them: ``profiling/Time taken: <Trainer>.<block>``; the block is group 1.
TRL_PROFILING_KEY = re.compile(r"^profiling/Time taken: [A-Za-z_][A-Za-z0-9_]*\.(.+)$")

#: Patterns applied after the tables (first match wins): (regex, replacement: a ``re.sub``
#: template, or a function of the match).
_PATTERNS: dict[str, list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]]] = {
    "trl": [(re.compile(r"^rewards/([^/]+)/(mean|std)$"), r"reward/\1/\2"),
            (TRL_PROFILING_KEY, lambda match: trl_profiling_metric(match.group(1)))],
    "openrlhf": [(re.compile(r"^timing/(.+?)(?:_time)?$"), r"perf/\1_s")],
}

KEYMAPS: dict[str, Mapping[str, str]] = {"trl": TRL, "openrlhf": OPENRLHF}


@functools.lru_cache(maxsize=8192)
def canonical_name(key: str, framework: str) -> str | None:
    """The canonical name of ``key`` in ``framework``'s vocabulary, or None if it has none.
    ``eval_<key>`` (transformers' evaluation prefix) maps to ``eval/<canonical or key>``."""
    if key.startswith("eval_"):
        inner = key[len("eval_"):]
        return f"eval/{canonical_name(inner, framework) or inner}"
    table = KEYMAPS[framework]
    if key in table:
        return table[key]
    for pattern, replacement in _PATTERNS.get(framework, ()):
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return None


#: Under which names an integration records a framework's metrics: ``"canonical"`` (each key
#: that has a canonical name under that name only: each quantity appears once), ``"both"`` (the
#: original key and the canonical name, two series of one quantity) or ``"original"`` (as logged).
MetricNames = Literal["canonical", "both", "original"]
METRIC_NAMES: tuple[str, ...] = ("canonical", "both", "original")

#: The artifact that maps the original keys to the canonical names they are recorded under.
NAMES_ARTIFACT = "rldk/metric_names.json"


def check_metric_names(names: str) -> MetricNames:
    """``names`` if it is one of :data:`METRIC_NAMES`; a ValueError that lists them otherwise."""
    if names not in METRIC_NAMES:
        raise ValueError(f"metric_names must be one of {', '.join(map(repr, METRIC_NAMES))}, not {names!r}")
    return names  # type: ignore[return-value]


def renames(keys: Iterable[str], framework: str) -> dict[str, str]:
    """The original keys among ``keys`` that ``names="canonical"`` records under their canonical
    name, and that name. A key keeps its own name when its canonical name is also among ``keys``
    or was taken by an earlier key (``objective/kl`` and ``kl`` in one line): nothing is lost."""
    keys = list(keys)
    taken = set(keys)
    out: dict[str, str] = {}
    for key in keys:
        name = canonical_name(key, framework)
        if name and name not in taken:
            taken.add(name)
            out[key] = name
    return out


def canonicalize(values: Mapping[str, float], framework: str, names: MetricNames = "both") -> dict[str, float]:
    """``values`` under the names ``names`` asks for (:data:`MetricNames`). A value is never
    dropped and a canonical name already present in ``values`` is never overwritten."""
    if names == "original":
        return dict(values)
    renamed = renames(values, framework)
    if names == "canonical":
        return {renamed.get(key, key): value for key, value in values.items()}
    out = dict(values)
    for key, name in renamed.items():
        out[name] = values[key]
    return out


def names_artifact(framework: str, names: MetricNames, renamed: Mapping[str, str]) -> bytes:
    """The JSON of :data:`NAMES_ARTIFACT`: how the run's metric keys were recorded."""
    return (json.dumps({"framework": framework, "metric_names": names, "renamed": dict(sorted(renamed.items()))},
                       indent=2) + "\n").encode()


def resolve(name: str, known: Collection[str]) -> str:
    """The metric among ``known`` that ``name`` means: ``name`` itself, else its canonical name in
    a framework's vocabulary (``reward`` finds ``reward/mean`` in a run recorded under canonical
    names), else a known key whose canonical name it is (``reward/mean`` finds ``reward`` in a run
    recorded under original names), else ``name`` unchanged (for the caller to report as unknown)."""
    if name in known:
        return name
    for framework in KEYMAPS:
        canonical = canonical_name(name, framework)
        if canonical in known:
            return canonical
    for framework in KEYMAPS:
        for key in known:
            if canonical_name(key, framework) == name:
                return key
    return name
