"""Canonical names line runs from different frameworks up, without hiding the originals."""

from rldk_track.keymaps import canonical_name, canonicalize


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
