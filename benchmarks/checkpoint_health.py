"""Checkpoint health: analysis speed (GB/s) and peak memory, streamed vs. loaded whole.

Builds two synthetic sharded bf16 checkpoints shaped like a Llama-style model (``--size-gb``
each, ``model-0000x-of-0000y.safetensors`` + index; the second is the first plus a small update),
then measures, each case in a fresh child process:

- ``stream``: ``rldk_track.analyzers.checkpoint.analyze(path)`` with the default chunk and each
  ``--chunks`` size;
- ``stream+ref``: the same against the first checkpoint (drift and cosine per tensor);
- ``whole`` / ``whole+ref``: the usual script: ``safetensors.torch.load_file`` of every shard
  and the same statistics with torch on the loaded tensors (the alternative we replace).

and ``training``: a small torch MLP training loop on the main thread, timed alone and while a
``CheckpointMonitor`` analyses both checkpoints on its own thread (step-time ratio), plus what
``submit()`` itself costs the training thread.

GB/s counts the analysed checkpoint's bytes (not the reference's); peak RSS is the growth of the
child's resident set over its size before the analysis (the peak is reset through
``/proc/self/clear_refs`` on Linux). Files are read from a warm page cache (just written).

    python benchmarks/checkpoint_health.py --size-gb 2
    python benchmarks/checkpoint_health.py --size-gb 1 --chunks 1,4,16 --dir /tmp/ckpt
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from rldk_track.analyzers.checkpoint_files import DEFAULT_CHUNK_ELEMENTS  # noqa: E402
SHARD_BYTES = 1 << 30


# -- building checkpoints -------------------------------------------------------------------------
def layout(size_gb: float, hidden: int = 2048, ffn: int = 5632, vocab: int = 32000) -> list[tuple[str, tuple[int, ...]]]:
    """Tensor names and shapes of a Llama-style model with as many layers as fit in ``size_gb`` (bf16)."""
    per_layer = [(f"self_attn.{p}_proj.weight", (hidden, hidden)) for p in "qkvo"]
    per_layer += [("mlp.gate_proj.weight", (ffn, hidden)), ("mlp.up_proj.weight", (ffn, hidden)),
                  ("mlp.down_proj.weight", (hidden, ffn)), ("input_layernorm.weight", (hidden,)),
                  ("post_attention_layernorm.weight", (hidden,))]
    layer_bytes = 2 * sum(_numel(s) for _, s in per_layer)
    fixed = [("model.embed_tokens.weight", (vocab, hidden)), ("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
    layers = max(1, int((size_gb * 1e9 - 2 * sum(_numel(s) for _, s in fixed)) // layer_bytes))
    names = [fixed[0]]
    for i in range(layers):
        names += [(f"model.layers.{i}.{n}", s) for n, s in per_layer]
    return names + fixed[1:]


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def write_checkpoint(folder: Path, tensors: list[tuple[str, tuple[int, ...]]], update: float, seed: int = 0) -> int:
    """Sharded bf16 safetensors, written block by block (never the whole model in memory).
    ``update`` > 0 adds ``update * N(0, 0.02)`` to every weight (a training step's worth)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    block = 1 << 24
    base = [(rng.standard_normal(block, dtype=np.float32) * 0.02) for _ in range(4)]
    noise = rng.standard_normal(block, dtype=np.float32) * 0.02 * update
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in tensors:
        if size and size + 2 * _numel(shape) > SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += 2 * _numel(shape)
    folder.mkdir(parents=True, exist_ok=True)
    weight_map, total, counter = {}, 0, 0
    for k, shard in enumerate(shards, 1):
        file = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {}, 0
        for name, shape in shard:
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + 2 * _numel(shape)]}
            offset += 2 * _numel(shape)
            weight_map[name] = file
        encoded = json.dumps(header).encode()
        encoded += b" " * (-len(encoded) % 8)
        with open(folder / file, "wb") as f:
            f.write(struct.pack("<Q", len(encoded)) + encoded)
            for name, shape in shard:
                remaining = _numel(shape)
                while remaining:
                    n = min(block, remaining)
                    values = base[counter % len(base)][:n]
                    if name.endswith("norm.weight"):
                        values = values + 1.0
                    if update:
                        values = values + noise[:n]
                    counter += 1
                    f.write((values.view(np.uint32) >> 16).astype(np.uint16).tobytes())  # bf16 = top half
                    remaining -= n
        total += offset
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return total


# -- measuring (in a child process) ---------------------------------------------------------------
def _status_bytes(key: str) -> int:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(case: str, path: str, reference: str | None, chunk: int) -> dict[str, float]:
    if case == "training":
        return training_interference(path, reference or path)
    if case.startswith("whole"):
        import torch  # noqa: F401  (imported before the baseline, like the analysis's own imports)
        from safetensors.torch import load_file
    else:
        import numpy  # noqa: F401

        from rldk_track.analyzers.checkpoint import analyze
    before = _status_bytes("VmRSS:")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    started = time.perf_counter()
    if case.startswith("whole"):
        summary = _whole(load_file, path, reference)
    else:
        report = analyze(path, reference, chunk_elements=chunk)
        summary = {"score": report.score, "drift": report.drift, "parameters": report.parameters}
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_growth": _status_bytes("VmHWM:") - before, "baseline_rss": before, **summary}


def training_interference(path: str, reference: str) -> dict[str, float]:
    """Step time of a small CPU training loop alone, then while the monitor analyses."""
    import tempfile

    import torch

    import rldk_track
    from rldk_track.producers.checkpoint_monitor import CheckpointMonitor

    model = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    batch = torch.randn(64, 512)

    def step() -> None:
        optimizer.zero_grad()
        model(batch).pow(2).mean().backward()
        optimizer.step()

    for _ in range(50):
        step()
    started = time.perf_counter()
    for _ in range(300):
        step()
    alone = (time.perf_counter() - started) / 300
    with tempfile.TemporaryDirectory() as runs:
        run = rldk_track.init(dir=runs)
        monitor = CheckpointMonitor(run)
        submitted = time.perf_counter()
        monitor.submit(reference, step=100)
        monitor.submit(path, step=200)
        submit_s = (time.perf_counter() - submitted) / 2
        steps, started = 0, time.perf_counter()
        deadline = time.monotonic() + 600
        while len(monitor.reports) < 2 and time.monotonic() < deadline:
            step()
            steps += 1
        during = (time.perf_counter() - started) / max(steps, 1)
        analysis_s = time.perf_counter() - submitted
        monitor.close()
        run.finish()
    return {"seconds": analysis_s, "step_alone_ms": alone * 1e3, "step_during_ms": during * 1e3,
            "slowdown": during / alone, "submit_ms": submit_s * 1e3, "steps": steps, "peak_growth": 0, "baseline_rss": 0}


def _whole(load_file, path: str, reference: str | None) -> dict[str, float]:
    """The usual script: load every shard, then per-tensor statistics with torch."""
    import torch

    def load(folder: str) -> dict[str, torch.Tensor]:
        out = {}
        for file in sorted(Path(folder).glob("*.safetensors")):
            out.update(load_file(str(file)))
        return out

    current = load(path)
    ref = load(reference) if reference else None
    dd = yy = 0.0
    parameters = 0
    for name, tensor in current.items():
        x = tensor.float()
        parameters += x.numel()
        _ = (int(torch.isnan(x).sum()), int(torch.isinf(x).sum()), float(x.norm()), float(x.mean()), float(x.std()),
             float(x.abs().max()))
        if ref is not None:
            y = ref[name].float()
            dd += float((x - y).pow(2).sum())
            yy += float(y.pow(2).sum())
            _ = float(torch.nn.functional.cosine_similarity(x.flatten(), y.flatten(), dim=0))
    return {"drift": (dd / yy) ** 0.5 if ref is not None else None, "parameters": parameters}


def run_child(case: str, path: Path, reference: Path | None, chunk: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--measure", case, "--path", str(path), "--chunk-elements", str(chunk)]
    if reference is not None:
        cmd += ["--reference", str(reference)]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=2.0, help="size of each synthetic checkpoint (bf16)")
    parser.add_argument("--chunks", default="1,4,16", help="chunk sizes to try, in Mi elements (default 1,4,16)")
    parser.add_argument("--dir", help="where to build the checkpoints (default: a temp dir, removed after)")
    parser.add_argument("--skip-whole", action="store_true", help="do not run the load-everything baseline")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--chunk-elements", type=int, default=4 << 20, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.path, args.reference, args.chunk_elements)))
        return

    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="rldk-ckpt-bench-"))
    try:
        tensors = layout(args.size_gb)
        started = time.perf_counter()
        size = write_checkpoint(root / "checkpoint-100", tensors, update=0.0)
        write_checkpoint(root / "checkpoint-200", tensors, update=0.01)
        largest = max(2 * _numel(s) for _, s in tensors)
        print(f"built 2 checkpoints of {size / 1e9:.2f} GB ({len(tensors)} bf16 tensors, largest {largest / 2**20:.0f} MiB, "
              f"{len(list((root / 'checkpoint-200').glob('*.safetensors')))} shards) in {time.perf_counter() - started:.0f} s "
              f"under {root}; {os.cpu_count()} CPUs")
        current, previous = root / "checkpoint-200", root / "checkpoint-100"
        run_child("stream", current, None, DEFAULT_CHUNK_ELEMENTS)  # warm the page cache for both
        run_child("stream", previous, None, DEFAULT_CHUNK_ELEMENTS)
        rows = [("stream (default chunk)", run_child("stream", current, None, DEFAULT_CHUNK_ELEMENTS)),
                ("stream+ref (default chunk)", run_child("stream+ref", current, previous, DEFAULT_CHUNK_ELEMENTS))]
        for chunk in (int(float(c) * (1 << 20)) for c in args.chunks.split(",")):
            rows.append((f"stream chunk={chunk / (1 << 20):g}Mi", run_child("stream", current, None, chunk)))
        if not args.skip_whole:
            rows.append(("whole (load_file + torch)", run_child("whole", current, None, 0)))
            rows.append(("whole+ref (load_file + torch)", run_child("whole+ref", current, previous, 0)))
        print(f"{'case':32} {'seconds':>8} {'GB/s':>7} {'peak RSS growth':>16} {'drift':>9}")
        for name, r in rows:
            drift = "" if r.get("drift") is None else f"{r['drift']:.5f}"
            print(f"{name:32} {r['seconds']:8.2f} {size / 1e9 / r['seconds']:7.2f} {r['peak_growth'] / 2**20:12.0f} MiB {drift:>9}")
        training = run_child("training", current, previous, 0)
        print(f"training loop on the main thread (torch MLP, {training['steps']} steps): {training['step_alone_ms']:.2f} ms/step "
              f"alone, {training['step_during_ms']:.2f} ms/step while the monitor analysed both checkpoints "
              f"({training['seconds']:.1f} s): {training['slowdown']:.2f}x; submit() took {training['submit_ms']:.2f} ms")
        results = dict(rows)
        if not args.skip_whole:
            for label, ours, theirs in (("no reference", "stream (default chunk)", "whole (load_file + torch)"),
                                        ("with reference", "stream+ref (default chunk)", "whole+ref (load_file + torch)")):
                a, b = results[ours], results[theirs]
                print(f"whole / stream, {label:15}: time {b['seconds'] / a['seconds']:.2f}x, "
                      f"peak RSS growth {b['peak_growth'] / max(a['peak_growth'], 1):.0f}x")
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
