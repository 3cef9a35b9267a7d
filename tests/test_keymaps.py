"""Canonical names line runs from different frameworks up, without hiding the originals."""

from rldk_track.keymaps import canonical_name, canonicalize, renames, resolve


def test_trl_grpo_keys_gain_canonical_names_and_keep_their_own():
    logged = {"reward": 0.5, "kl": 0.01, "entropy": 2.1, "completions/mean_length": 31.0, "learning_rate": 1e-6}
    out = canonicalize(logged, "trl")
    assert out["reward/mean"] == 0.5 and out["kl/mean"] == 0.01 and out["entropy/mean"] == 2.1
    assert out["length/response_mean"] == 31.0 and out["lr"] == 1e-6
    assert all(out[k] == v for k, v in logged.items())


def test_legacy_ppo_and_openrlhf_land_on_the_same_names_as_grpo():
    assert canonical_name("objective/kl", "trl") == canonical_name("kl", "openrlhf") == canonical_name("kl", "trl") == "kl/mean"
    assert canonical_name("policy/clipfrac_avg", "trl") == canonical_name("ppo_clip_ratio", "openrlhf") == "clip/ratio"
    assert canonical_name("rewards/format_reward/mean", "trl") == "reward/format_reward/mean"
    assert canonical_name("timing/generate_time", "openrlhf") == "perf/generate_s"


def test_eval_keys_map_under_eval():
    assert canonical_name("eval_loss", "trl") == "eval/loss/total"
    assert canonical_name("eval_custom", "trl") == "eval/custom"


def test_a_canonical_name_the_user_logged_is_never_overwritten():
    out = canonicalize({"kl": 1.0, "kl/mean": 2.0}, "trl")
    assert out["kl/mean"] == 2.0 and out["kl"] == 1.0


def test_unknown_keys_pass_through():
    assert canonicalize({"my/metric": 3.0}, "trl") == {"my/metric": 3.0}


def test_canonical_names_record_each_quantity_once_and_lose_nothing():
    logged = {"reward": 0.5, "kl": 0.01, "epoch": 1.0}
    assert canonicalize(logged, "trl", "canonical") == {"reward/mean": 0.5, "kl/mean": 0.01, "epoch": 1.0}
    # a canonical name already given (or taken by an earlier key) leaves the other key as it is
    assert canonicalize({"kl": 1.0, "kl/mean": 2.0}, "trl", "canonical") == {"kl": 1.0, "kl/mean": 2.0}
    assert canonicalize({"objective/kl": 1.0, "kl": 2.0}, "trl", "canonical") == {"kl/mean": 1.0, "kl": 2.0}
    assert renames({"objective/kl": 1.0, "kl": 2.0}, "trl") == {"objective/kl": "kl/mean"}


def test_original_names_are_the_keys_as_logged():
    assert canonicalize({"reward": 0.5, "kl": 0.01}, "trl", "original") == {"reward": 0.5, "kl": 0.01}


def test_a_metric_is_found_by_either_name():
    assert resolve("reward", ["reward/mean", "kl/mean"]) == "reward/mean"  # recorded under canonical names
    assert resolve("ppo_kl", ["kl/approx"]) == "kl/approx"  # an OpenRLHF key
    assert resolve("reward/mean", ["reward", "kl"]) == "reward"  # recorded under original names
    assert resolve("kl", ["kl", "kl/mean"]) == "kl"  # the name itself first
    assert resolve("nothing", ["reward/mean"]) == "nothing"


def test_trls_own_profiling_keys_get_the_perf_names_rldkcallback_records():
    key = "profiling/Time taken: {}".format
    assert canonical_name(key("GRPOTrainer.transformers.generate"), "trl") == "perf/generate_s"
    assert canonical_name(key("RLOOTrainer.vLLM.generate"), "trl") == "perf/generate_s"
    assert canonical_name(key("GRPOTrainer._calculate_rewards"), "trl") == "perf/reward_s"
    assert canonical_name(key("GRPOTrainer._prepare_inputs"), "trl") == "perf/prepare_inputs_s"
    assert canonical_name(key("GRPOTrainer._get_per_token_logps_and_entropies"), "trl") == "perf/logps_s"
    assert canonical_name(key("GRPOTrainer.compute_loss"), "trl") == "perf/compute_loss_s"
    assert canonical_name(key("GRPOTrainer._generate"), "trl") == "perf/generate_s"  # any other block: its name
    assert canonical_name(key("GRPOTrainer.length_reward"), "trl") == "perf/length_reward_s"  # not known as a reward fn
    assert canonical_name(key("nodot"), "trl") is None and canonical_name(key("GRPOTrainer.x"), "openrlhf") is None
    logged = {key("GRPOTrainer.transformers.generate"): 0.25, "perf/compute_loss_s": 0.1,
              key("GRPOTrainer.compute_loss"): 0.2}
    assert canonicalize(logged, "trl", "canonical") == {"perf/generate_s": 0.25, "perf/compute_loss_s": 0.1,
                                                        key("GRPOTrainer.compute_loss"): 0.2}  # never overwritten
    assert resolve("perf/generate_s", set(logged)) == key("GRPOTrainer.transformers.generate")
