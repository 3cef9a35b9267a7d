"""Checkpoint health: real safetensors / torch files built here (small), analysed as a user would,
and the monitor logging through a real run, read back from the event log."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import rldk_track
from rldk_track.analyzers.checkpoint import CheckpointFormatError, HealthThresholds, analyze, health_score, status_of
from rldk_track.analyzers.checkpoint_alerts import CheckpointAlerts
from rldk_track.eventlog import read_records
from rldk_track.producers import checkpoint_monitor
from rldk_track.producers.checkpoint_monitor import CheckpointMonitor
from rldk_track.records import Alert, Artifact, CheckpointHealth, Metrics, Tags

REPO = Path(__file__).resolve().parents[2]


def weights(seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A small transformer-shaped state dict: matrices, biases, a layer norm near 1, an int buffer."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for layer in range(2):
        p = f"model.layers.{layer}"
        out[f"{p}.attn.weight"] = (0.02 * torch.randn(48, 32, generator=g)).to(dtype)
        out[f"{p}.mlp.weight"] = (0.02 * torch.randn(64, 48, generator=g)).to(dtype)
        out[f"{p}.mlp.bias"] = (0.01 * torch.randn(64, generator=g)).to(dtype)
        out[f"{p}.norm.weight"] = (1.0 + 1e-3 * torch.randn(48, generator=g)).to(dtype)
    out["model.embed.weight"] = (0.02 * torch.randn(100, 32, generator=g)).to(dtype)
    out["model.position_ids"] = torch.arange(16)
    return out


def moved(state: dict[str, torch.Tensor], scale: float, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: (v + scale * v.float().std() * torch.randn(v.shape, generator=g)).to(v.dtype) if v.is_floating_point() else v
            for k, v in state.items()}


def save_checkpoint(folder: Path, state: dict[str, torch.Tensor]) -> Path:
    """A TRL-style ``checkpoint-N`` folder: model.safetensors plus the trainer's other files."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    (folder / "trainer_state.json").write_text("{}")
    torch.save({"state": {}, "param_groups": []}, folder / "optimizer.pt")
    return folder


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.to(torch.float64).numpy().ravel()


# -- analysis -----------------------------------------------------------------------------------
def test_nan_injected_into_one_tensor_is_found_and_named(tmp_path):
    state = weights(dtype=torch.bfloat16)
    state["model.layers.1.mlp.weight"][5, 7] = float("nan")
    state["model.layers.1.mlp.weight"][9, 1] = float("nan")
    report = analyze(save_checkpoint(tmp_path / "checkpoint-10", state))

    assert report.nonfinite_tensors == ["model.layers.1.mlp.weight"]
    assert (report.nan, report.inf) == (2, 0)
    assert report.status == "critical"
    assert "model.layers.1.mlp.weight (2 NaN, 0 Inf)" in report.issues[0]
    assert report.recommendations[0].startswith("Do not resume")


def test_inf_is_counted_apart_from_nan(tmp_path):
    state = weights()
    state["model.embed.weight"][0, 0] = float("inf")
    state["model.embed.weight"][1, 0] = float("-inf")
    state["model.embed.weight"][2, 0] = float("nan")
    report = analyze(save_checkpoint(tmp_path / "c", state))
    embed = next(t for t in report.tensors if t.name == "model.embed.weight")
    assert (embed.nan, embed.inf) == (1, 2)
    assert (report.nan, report.inf) == (1, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_tensor_statistics_match_numpy_across_chunks(tmp_path, dtype):
    state = weights(dtype=dtype)
    report = analyze(save_checkpoint(tmp_path / "c", state), chunk_elements=1000)  # most tensors span chunks
    for stats in report.tensors:
        values = as_numpy(state[stats.name])
        assert stats.dtype == {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}[dtype]
        assert stats.norm == pytest.approx(np.linalg.norm(values), rel=1e-6)
        assert stats.mean == pytest.approx(values.mean(), rel=1e-5, abs=1e-9)
        assert stats.std == pytest.approx(values.std(), rel=1e-5)
        assert stats.max_abs == pytest.approx(np.abs(values).max(), rel=1e-7)
    assert report.skipped == ["model.position_ids (I64)"]
    assert report.parameters == sum(v.numel() for v in state.values() if v.is_floating_point())


def test_drift_between_two_checkpoints_matches_numpy(tmp_path):
    before = weights(seed=0)
    after = moved(before, 0.05)
    report = analyze(save_checkpoint(tmp_path / "checkpoint-2", after), save_checkpoint(tmp_path / "checkpoint-1", before),
                     chunk_elements=1000)

    for stats in report.tensors:
        x, y = as_numpy(after[stats.name]), as_numpy(before[stats.name])
        assert stats.drift == pytest.approx(np.linalg.norm(x - y) / np.linalg.norm(y), rel=1e-5)
        assert stats.cosine == pytest.approx(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)), abs=1e-6)
    names = [t.name for t in report.tensors]
    x = np.concatenate([as_numpy(after[n]) for n in names])
    y = np.concatenate([as_numpy(before[n]) for n in names])
    assert report.drift == pytest.approx(np.linalg.norm(x - y) / np.linalg.norm(y), rel=1e-5)
    assert report.cosine == pytest.approx(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)), abs=1e-6)
    drifts = {t.name: t.drift for t in report.tensors}
    assert [t.name for t in report.top_drift()] == sorted(drifts, key=drifts.get, reverse=True)[:5]


def test_drift_of_tiny_updates_is_not_lost_to_rounding(tmp_path):
    before = weights(seed=0)
    after = moved(before, 1e-4)  # a single small RLHF step
    report = analyze(save_checkpoint(tmp_path / "b", after), save_checkpoint(tmp_path / "a", before))
    x = np.concatenate([as_numpy(after[t.name]) for t in report.tensors])
    y = np.concatenate([as_numpy(before[t.name]) for t in report.tensors])
    assert report.drift == pytest.approx(np.linalg.norm(x - y) / np.linalg.norm(y), rel=1e-4)


def test_sharded_checkpoint_is_read_through_its_index(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=500, n_positions=64))
    model.save_pretrained(tmp_path / "checkpoint-4", max_shard_size="100KB")
    shards = sorted((tmp_path / "checkpoint-4").glob("model-*.safetensors"))
    assert len(shards) > 1

    report = analyze(tmp_path / "checkpoint-4")
    expected = {n: p for n, p in model.state_dict().items() if n in {t.name for t in report.tensors}}
    assert report.format == "safetensors" and len(report.files) == len(shards)
    assert report.parameters == sum(p.numel() for p in model.parameters())
    wte = next(t for t in report.tensors if t.name == "transformer.wte.weight")
    assert wte.norm == pytest.approx(float(expected["transformer.wte.weight"].double().norm()), rel=1e-6)


def test_torch_bin_checkpoint_gives_the_same_report_as_safetensors(tmp_path):
    state = weights(dtype=torch.bfloat16)
    safe = analyze(save_checkpoint(tmp_path / "safe", state))
    (tmp_path / "bin").mkdir()
    torch.save(state, tmp_path / "bin" / "pytorch_model.bin")
    torch.save({"lr": 1.0}, tmp_path / "bin" / "scheduler.pt")  # trainer files are not weights
    binary = analyze(tmp_path / "bin", chunk_elements=777)
    assert binary.format == "torch" and binary.files == [str(tmp_path / "bin" / "pytorch_model.bin")]
    by_name = {t.name: t for t in binary.tensors}
    for stats in safe.tensors:
        assert by_name[stats.name].norm == pytest.approx(stats.norm, rel=1e-6)
        assert by_name[stats.name].max_abs == stats.max_abs


def test_deepspeed_model_states_are_found_in_a_global_step_folder(tmp_path):
    """OpenRLHF's ``_actor/global_step<N>/`` (and DeepSpeed inside TRL's checkpoint folder)."""
    state = weights()
    tag = tmp_path / "_actor" / "global_step20"
    tag.mkdir(parents=True)
    torch.save({"module": state, "ds_version": "0.16.0", "global_steps": 20}, tag / "mp_rank_00_model_states.pt")
    torch.save({"optimizer_state_dict": {}}, tag / "zero_pp_rank_0_mp_rank_00_optim_states.pt")

    report = analyze(tmp_path / "_actor")
    assert report.path == str(tmp_path / "_actor")
    assert report.files == [str(tag / "mp_rank_00_model_states.pt")]
    assert {t.name for t in report.tensors} == {k for k, v in state.items() if v.is_floating_point()}


def test_zero3_placeholders_are_refused_with_a_hint(tmp_path):
    """Under ZeRO-3, ``mp_rank_00_model_states.pt`` holds empty tensors in place of the weights."""
    tag = tmp_path / "global_step5"
    tag.mkdir()
    torch.save({"module": {"model.embed.weight": torch.empty(0, dtype=torch.bfloat16)}}, tag / "mp_rank_00_model_states.pt")
    with pytest.raises(CheckpointFormatError, match="ZeRO-3"):
        analyze(tmp_path)


def test_peft_adapter_folder_is_analyzed(tmp_path):
    folder = tmp_path / "checkpoint-3"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    save_file({"base_model.model.q_proj.lora_A.weight": torch.randn(4, 32, generator=g),
               "base_model.model.q_proj.lora_B.weight": 0.01 * torch.randn(32, 4, generator=g)},
              str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"r": 4}))
    report = analyze(folder)
    assert len(report.tensors) == 2 and report.status == "ok"


def test_a_folder_without_weights_says_what_it_looked_for(tmp_path):
    (tmp_path / "checkpoint-1").mkdir()
    torch.save({"state": {}}, tmp_path / "checkpoint-1" / "optimizer.pt")
    with pytest.raises(CheckpointFormatError, match="no weights in .*safetensors"):
        analyze(tmp_path / "checkpoint-1")


def test_a_truncated_safetensors_file_is_a_format_error(tmp_path):
    path = save_checkpoint(tmp_path / "c", weights()) / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFormatError, match="past the end"):
        analyze(path)


def test_constant_weight_matrix_is_flagged(tmp_path):
    state = weights()
    state["model.layers.0.mlp.weight"].zero_()
    report = analyze(save_checkpoint(tmp_path / "c", state))
    assert next(t for t in report.tensors if t.name == "model.layers.0.mlp.weight").flags == ["constant"]
    assert report.score == pytest.approx(0.9)
    assert "constant weight matrix" in report.issues[0]


def test_large_drift_lowers_the_score_and_says_why(tmp_path):
    before = weights()
    report = analyze(save_checkpoint(tmp_path / "b", moved(before, 3.0)), save_checkpoint(tmp_path / "a", before))
    assert report.drift > 0.25
    assert report.score < 0.5 and report.status == "critical"
    assert any(issue.startswith(f"weights moved {report.drift:.1%}") for issue in report.issues)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS reset needs Linux /proc")
@pytest.mark.parametrize("fmt", ["safetensors", "torch"])
def test_memory_stays_bounded_on_a_checkpoint_larger_than_the_chunk(tmp_path, fmt):
    """A 128 MiB tensor read in 4 MiB chunks: the analysing process grows by far less than the
    tensor (peak RSS measured in a fresh child process)."""
    numel = 32 * 2**20
    writer = textwrap.dedent(f"""
        import sys, numpy as np
        big = np.random.default_rng(0).random(({numel} // 1024, 1024), dtype=np.float32)
        if sys.argv[1] == "safetensors":
            from safetensors.numpy import save_file
            save_file({{"big.weight": big, "small.bias": np.ones(10, np.float32)}}, sys.argv[2])
        else:
            import torch
            torch.save({{"big.weight": torch.from_numpy(big), "small.bias": torch.ones(10)}}, sys.argv[2])
    """)
    path = tmp_path / ("model.safetensors" if fmt == "safetensors" else "pytorch_model.bin")
    subprocess.run([sys.executable, "-c", writer, fmt, str(path)], check=True)
    reader = textwrap.dedent(f"""
        import sys, numpy
        if {fmt == "torch"}: import torch
        from rldk_track.analyzers.checkpoint import analyze

        def status(key):
            return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key))

        before = status("VmRSS:")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak (VmHWM) to the current RSS
        report = analyze(sys.argv[1], chunk_elements=2**20)
        print(report.parameters, status("VmHWM:") - before)
    """)
    out = subprocess.run([sys.executable, "-c", reader, str(path)], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.split()
    parameters, growth = int(out[0]), int(out[1])
    assert parameters == numel + 10
    assert growth < 32 * 2**20, f"peak RSS grew by {growth / 2**20:.0f} MiB for a 128 MiB tensor"


# -- the score ------------------------------------------------------------------------------------
def test_score_falls_as_more_tensors_hold_nan():
    scores = [health_score(100, bad, None, 0)[0] for bad in range(0, 5)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 5
    assert scores[0] == 1.0 and all(s < 0.5 for s in scores[1:])


def test_score_falls_as_drift_grows():
    scores = [health_score(100, 0, drift, 0)[0] for drift in (0.0, 0.01, 0.1, 0.25, 0.5, 2.0)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 6
    assert scores[3] == pytest.approx(0.5)


def test_score_falls_with_each_anomalous_tensor():
    scores = [health_score(100, 0, 0.01, k)[0] for k in range(5)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 5


def test_score_stays_within_zero_and_one():
    for args in [(0, 0, None, 0), (1, 1, math.inf, 100), (10, 10, 1e9, 1000), (10, 0, float("nan"), 0)]:
        assert 0.0 <= health_score(*args)[0] <= 1.0


def test_status_thresholds():
    assert status_of(0.95, False) == "ok"
    assert status_of(0.7, False) == "warning"
    assert status_of(0.3, False) == "critical"
    assert status_of(0.99, True) == "critical"
    assert status_of(0.7, False, HealthThresholds(warning_below=0.6)) == "ok"


# -- records and alerts ----------------------------------------------------------------------------
def test_report_converts_to_the_records_a_run_logs(tmp_path):
    before = weights()
    report = analyze(save_checkpoint(tmp_path / "b", moved(before, 0.05)), save_checkpoint(tmp_path / "a", before))
    records = report.to_records(step=200)

    health = next(r for r in records if isinstance(r, CheckpointHealth))
    assert (health.step, health.score, health.path) == (200, report.score, str(tmp_path / "b"))
    metrics = next(r for r in records if isinstance(r, Metrics))
    assert metrics.step == 200
    assert metrics.values["checkpoint/health_score"] == report.score
    assert metrics.values["checkpoint/drift"] == report.drift
    assert metrics.values["checkpoint/nan_count"] == 0.0
    assert next(r for r in records if isinstance(r, Tags)).values == {"rldk.checkpoint.health": "ok"}
    artifacts = {r.name: r.data for r in records if isinstance(r, Artifact)}
    assert set(artifacts) == {"rldk/checkpoints/step_200/report.json", "rldk/checkpoints/step_200/health.md"}
    body = json.loads(artifacts["rldk/checkpoints/step_200/report.json"])
    assert body["score"] == report.score and len(body["tensors"]) == len(report.tensors)
    assert b"Checkpoint health, step 200" in artifacts["rldk/checkpoints/step_200/health.md"]


def test_a_checkpoint_deleted_after_it_was_read_is_not_offered_to_resume_from(tmp_path):
    """``save_total_limit`` rotates old checkpoints away, sometimes while one is analysed."""
    import shutil

    folder = save_checkpoint(tmp_path / "checkpoint-2", weights())
    report = analyze(folder)
    assert "safe to resume from" in report.to_markdown(step=2)
    shutil.rmtree(folder)
    records = report.to_records(step=2)
    health_md = next(r.data.decode() for r in records if isinstance(r, Artifact) and r.name.endswith("health.md"))
    assert "safe to resume from" not in health_md and "no longer on disk" in health_md
    assert not any("safe to resume" in r for r in next(r for r in records if isinstance(r, CheckpointHealth)).recommendations)


def test_alerts_are_raised_once_per_episode_and_cleared_on_recovery(tmp_path):
    healthy = analyze(save_checkpoint(tmp_path / "ok", weights()))
    state = weights()
    state["model.embed.weight"][0, 0] = float("nan")
    broken = analyze(save_checkpoint(tmp_path / "nan", state))
    alerts = CheckpointAlerts()

    assert alerts.update(healthy, 1) == []
    first = alerts.update(broken, 2)
    assert [(a.rule, a.severity, a.state, a.step) for a in first] == [("checkpoint_nonfinite", "critical", "raised", 2)]
    assert "model.embed.weight" in first[0].message
    assert alerts.update(broken, 3) == []
    cleared = alerts.update(healthy, 4)
    assert [(a.rule, a.severity, a.state, a.step) for a in cleared] == [("checkpoint_nonfinite", "critical", "cleared", 4)]
    assert cleared[0].action is None


def test_a_low_score_is_raised_escalated_once_and_cleared_with_the_episodes_severity(tmp_path):
    """One zeroed matrix scores 0.9: a warning under ``warning_below=0.95``, critical under
    ``critical_below=0.95``. A NaN checkpoint in between is the other rule's and leaves the episode."""
    state = weights()
    state["model.layers.0.mlp.weight"].zero_()
    reset = save_checkpoint(tmp_path / "reset", state)
    warning = analyze(reset, thresholds=HealthThresholds(warning_below=0.95))
    critical = analyze(reset, thresholds=HealthThresholds(warning_below=0.95, critical_below=0.95))
    state["model.embed.weight"][0, 0] = float("nan")
    broken = analyze(save_checkpoint(tmp_path / "nan", state))
    healthy = analyze(save_checkpoint(tmp_path / "ok", weights()))
    alerts = CheckpointAlerts(HealthThresholds(warning_below=0.95, critical_below=0.95))

    seen = [(a.rule, a.severity, a.state, a.step)
            for step, report in enumerate((warning, warning, critical, warning, critical, broken, healthy), start=1)
            for a in alerts.update(report, step)]
    assert seen == [
        ("checkpoint_health", "warning", "raised", 1),
        ("checkpoint_health", "critical", "raised", 3),
        ("checkpoint_nonfinite", "critical", "raised", 6),
        ("checkpoint_nonfinite", "critical", "cleared", 7),
        ("checkpoint_health", "critical", "cleared", 7),
    ]


# -- the monitor ------------------------------------------------------------------------------------
def events(run) -> list:
    return [r for _, r in read_records(run.dir / "events" / f"{run.id}.jsonl")]


@pytest.fixture
def analysis_threads(monkeypatch):
    """The thread each analysis ran on (the real ``analyze``, observed)."""
    threads: list[str] = []
    real = checkpoint_monitor.analyze

    def observed(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint_monitor, "analyze", observed)
    return threads


def test_monitor_analyzes_off_the_training_thread_and_logs_every_record(tmp_path, analysis_threads):
    out = tmp_path / "output"
    first = weights()
    second = moved(first, 0.02)
    run = rldk_track.init(dir=tmp_path / "runs")
    monitor = CheckpointMonitor(run)
    assert monitor.submit(save_checkpoint(out / "checkpoint-5", first), step=5)
    assert monitor.submit(save_checkpoint(out / "checkpoint-10", second), step=10)
    run.log({"loss": 1.0}, step=12)  # training went on meanwhile
    assert monitor.close(timeout=60)
    assert run.step == 12
    run.finish()

    assert analysis_threads == ["rldk-checkpoint-health"] * 2
    log = events(run)
    assert [(r.step, r.path) for r in log if isinstance(r, CheckpointHealth)] == [
        (5, str(out / "checkpoint-5")), (10, str(out / "checkpoint-10"))]
    series = {(r.step, k): v for r in log if isinstance(r, Metrics) for k, v in r.values.items()}
    assert series[(5, "checkpoint/health_score")] == 1.0
    assert (5, "checkpoint/drift") not in series
    x = np.concatenate([as_numpy(second[t.name]) for t in monitor.reports[10].tensors])
    y = np.concatenate([as_numpy(first[t.name]) for t in monitor.reports[10].tensors])
    assert series[(10, "checkpoint/drift")] == pytest.approx(np.linalg.norm(x - y) / np.linalg.norm(y), rel=1e-5)
    assert monitor.reports[10].reference_step == 5
    staged = {r.name: Path(r.path) for r in log if isinstance(r, Artifact)}
    assert json.loads(staged["rldk/checkpoints/step_10/report.json"].read_text())["reference_step"] == 5
    assert staged["rldk/checkpoints/step_10/health.md"].read_text().startswith("# Checkpoint health, step 10")
    assert [r.values for r in log if isinstance(r, Tags) and "rldk.checkpoint.health" in r.values][-1] == {
        "rldk.checkpoint.health": "ok"}


def test_monitor_keeps_its_reference_when_the_trainer_deletes_old_checkpoints(tmp_path):
    """``save_total_limit=1`` deletes checkpoint-5 before ``on_save`` of checkpoint-10 runs."""
    import shutil

    out = tmp_path / "output"
    first = weights()
    run = rldk_track.init(dir=tmp_path / "runs")
    monitor = CheckpointMonitor(run)
    monitor.submit(save_checkpoint(out / "checkpoint-5", first), step=5)
    shutil.rmtree(out / "checkpoint-5")
    monitor.submit(save_checkpoint(out / "checkpoint-10", moved(first, 0.02)), step=10)
    shutil.rmtree(out / "checkpoint-10")
    assert monitor.close(timeout=60)
    run.finish()

    assert sorted(monitor.reports) == [5, 10]
    assert monitor.reports[10].reference_step == 5 and monitor.reports[10].drift > 0
    assert not (tmp_path / "runs" / "pins").exists()  # the links are gone once analysed


def test_pins_left_by_a_dead_process_of_this_host_are_cleared_once_off_the_training_thread(tmp_path, monkeypatch):
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pins = tmp_path / "runs" / "pins"
    stale, alive, elsewhere = (pins / f"{socket.gethostname()}-{dead.pid}-5-aaaaaa",
                               pins / f"{socket.gethostname()}-{os.getpid()}-5-bbbbbb",
                               pins / f"another-host-{dead.pid}-5-cccccc")
    for folder in (stale, alive, elsewhere):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"held")
    sweeps: list[str] = []
    real = checkpoint_monitor.remove_stale_pins

    def observed(root):
        sweeps.append(threading.current_thread().name)
        real(root)

    monkeypatch.setattr(checkpoint_monitor, "remove_stale_pins", observed)
    run = rldk_track.init(dir=tmp_path / "runs")
    monitor = CheckpointMonitor(run)
    for step in (1, 2):
        monitor.submit(save_checkpoint(tmp_path / "output" / f"checkpoint-{step}", weights(step)), step=step)
    assert monitor.close(timeout=60)
    run.finish()

    assert sweeps == ["rldk-checkpoint-health"]
    assert not stale.exists() and alive.exists() and elsewhere.exists()


def test_monitor_alerts_on_a_nan_checkpoint_and_compares_the_next_with_the_last_healthy_one(tmp_path):
    out = tmp_path / "output"
    good = weights()
    bad = weights()
    bad["model.layers.0.attn.weight"][0, 0] = float("nan")
    run = rldk_track.init(dir=tmp_path / "runs")
    monitor = CheckpointMonitor(run, max_pending=3)  # all three may be waiting at once here
    for step, state in ((1, good), (2, bad), (3, moved(good, 0.01))):
        monitor.submit(save_checkpoint(out / f"checkpoint-{step}", state), step=step)
    assert monitor.close(timeout=60)
    run.finish()

    alerts = [(a.rule, a.severity, a.state, a.step) for a in events(run) if isinstance(a, Alert)]
    assert alerts == [("checkpoint_nonfinite", "critical", "raised", 2), ("checkpoint_nonfinite", "critical", "cleared", 3)]
    assert monitor.reports[2].recommendations[0].startswith("Do not resume from or deploy this checkpoint; go back to "
                                                            "the last healthy one (step 1)")
    assert monitor.reports[3].reference_step == 1
    tags = [r.values["rldk.checkpoint.health"] for r in events(run) if isinstance(r, Tags) and "rldk.checkpoint.health" in r.values]
    assert tags == ["ok", "critical", "ok"]


def test_an_unreadable_checkpoint_becomes_an_alert_not_an_exception(tmp_path):
    (tmp_path / "checkpoint-7").mkdir()
    run = rldk_track.init(dir=tmp_path / "runs")
    monitor = CheckpointMonitor(run)
    assert monitor.submit(tmp_path / "checkpoint-7", step=7) is False
    assert monitor.close(timeout=5)
    run.finish()
    alert = next(a for a in events(run) if isinstance(a, Alert))
    assert (alert.rule, alert.severity, alert.step) == ("checkpoint_unreadable", "warning", 7)


def test_monitor_skips_the_oldest_waiting_checkpoint_when_it_falls_behind(tmp_path, monkeypatch):
    started, release = threading.Event(), threading.Event()
    real = checkpoint_monitor.analyze

    def slow(*args, **kwargs):
        started.set()
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint_monitor, "analyze", slow)
    run = rldk_track.init(dir=tmp_path / "runs")
    monitor = CheckpointMonitor(run, max_pending=1)
    for step in (1, 2, 3):
        monitor.submit(save_checkpoint(tmp_path / "output" / f"checkpoint-{step}", weights(step)), step=step)
        started.wait(30)  # 1 is being analysed before 2 and 3 arrive
    release.set()
    assert monitor.close(timeout=60)
    run.finish()
    assert sorted(monitor.reports) == [1, 3]  # 1 was running, 2 waited and was replaced by 3
