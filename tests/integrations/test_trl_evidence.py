"""A real GRPO run on the tiny model whose reward pays for length (in tokens), with samples on:
the truncation alert it raises carries, as evidence, completions at the length cap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

import trl  # noqa: E402
from datasets import Dataset  # noqa: E402

from rldk_track.integrations.trl import RLDKCallback  # noqa: E402
from rldk_track.readers import load_runs  # noqa: E402

pytestmark = pytest.mark.timeout(300)

CAP = 8


def token_length_reward(completions: list[str], completion_ids: list[list[int]], log_extra: Any = None,
                        **_: Any) -> list[float]:
    """Pays for length, and logs each completion's token count as a samples column (TRL's
    ``log_extra``)."""
    lengths = [len(ids) for ids in completion_ids]
    if log_extra is not None:
        log_extra("completion_length", lengths)
    return [n / CAP for n in lengths]


def test_a_length_paying_grpo_run_alerts_with_completions_at_the_length_cap(tiny_lm_path: Path, tiny_lm_prompts: list[str],
                                                                             tmp_path: Path):
    callback = RLDKCallback(dir=tmp_path / "runs", analyzers="default", checkpoint_health=False, system_metrics=False,
                            samples=True)
    trainer = trl.GRPOTrainer(
        model=str(tiny_lm_path), reward_funcs=[token_length_reward],
        train_dataset=Dataset.from_dict({"prompt": tiny_lm_prompts[:16]}),
        args=trl.GRPOConfig(str(tmp_path / "out"), num_generations=4, max_completion_length=CAP, beta=0.04,
                            logging_steps=1, report_to=[], bf16=False, use_cpu=True, disable_tqdm=True,
                            per_device_train_batch_size=8, seed=0, save_strategy="no", max_steps=4),
        callbacks=[callback],
    )
    trainer.train()

    runset = load_runs(tmp_path / "runs")
    alerts = runset.alerts[runset.alerts["evidence"].notna()].to_dict("records")
    truncation = [a for a in alerts if a["rule"] == "truncation"]
    assert truncation, f"no truncation alert with evidence among {[a['rule'] for a in alerts]}"
    alert = truncation[0]
    evidence = alert["evidence"]
    assert evidence["name"] == "completions" and evidence["by"] == "length"
    assert evidence["step"] == alert["step"]  # the callback logs a step's samples before its metrics
    rows = [dict(zip(evidence["columns"], row)) for row in evidence["rows"]]
    assert len(rows) == 3
    assert all(row["completion_length"] == CAP for row in rows)  # at the cap, in tokens
    assert all(row["reward/token_length_reward"] == pytest.approx(1.0) for row in rows)
    samples = runset.samples[runset.samples["step"] == evidence["step"]]
    assert {row["completion"] for row in rows} <= set(samples["completion"])
