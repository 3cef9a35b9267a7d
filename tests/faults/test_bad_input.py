"""Adversarial input never escapes the API and never blocks a tracker: a seeded random fuzzer
calls every logging method with hostile names and values, and a sentinel metric logged after
each call must reach every tracker whole (read back with the project's readers)."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Any, Callable

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("wandb")
pytest.importorskip("tensorboard")
torch = pytest.importorskip("torch")

import rldk_track  # noqa: E402
from rldk_track.readers.sources import read_source  # noqa: E402

CALLS = int(os.environ.get("RLDK_FUZZ_CALLS", "150"))
SEED = int(os.environ.get("RLDK_FUZZ_SEED", "12"))


def hostile_names(rng: random.Random) -> str:
    return rng.choice([
        "a\ud800", "k\udc00ey", "tab\tname", "new\nline", "", " ", "../up", "a//b", "./x", "x" * 600,
        "ключ", "emoji😀", "sp ace", "col:on", "semi;colon", "q'uote", 'd"q', "back\\slash", "\x00nul",
        "rldk.alert.x", "_hparams_/x", "config", "%s%s", "{x}", rng.choice(["a", "b"]) * rng.randint(1, 5),
    ])


def hostile_values(rng: random.Random) -> Any:
    return rng.choice([
        10**400, -(10**400), float("nan"), float("inf"), -float("inf"), 1e308, 5e-324, 0, -1, True, None,
        "text\ud800", "x" * 20_000, b"\xff\xfe", [1, [2, [3]]], {"n": {"e": {"s": "t"}}}, (1, 2), set(),
        torch.empty(1, device="meta"), torch.empty(3, device="meta"), torch.tensor(float("nan")),
        torch.tensor([1.0, 2.0]), object(), math, 2**63, -(2**63) - 1, complex(1, 2),
    ])


def hostile_steps(rng: random.Random) -> Any:
    return rng.choice([None, -1, 0, 2**63, 10**20, 1e20, float("nan"), float("inf"), "7", torch.tensor(3)])


def hostile_call(run: rldk_track.Run, rng: random.Random) -> Callable[[], Any]:
    name, value, step = hostile_names(rng), hostile_values(rng), hostile_steps(rng)
    return rng.choice([
        lambda: run.log({name: value}, step=step),
        lambda: run.log_params({name: value, "nested": {name: value}}),
        lambda: run.set_tags({name: value}),
        lambda: run.log_summary({name: value}),
        lambda: run.alert(name or "rule", f"message {value!r}"[:500], step=step, metric=name, value=value, threshold=value),
        lambda: run.log_artifact(b"data", name=f"files/{name or 'empty'}.txt"),
    ])


def test_hostile_calls_raise_nothing_and_every_tracker_keeps_everything_after_them(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    run = rldk_track.init(backend=["mlflow", "tensorboard", "wandb"], dir=tmp_path, project="fuzz",
                          run_name=rng.choice(["fuzz\ud800run", "fuzz/run\n", "fuzz"]))
    escaped: list[str] = []
    for i in range(CALLS):
        call = hostile_call(run, rng)
        try:
            call()
        except Exception as exc:
            escaped.append(f"{type(exc).__name__}: {exc}")
        run.log({"sentinel": float(i)}, step=10_000 + i)
    report = run.finish(timeout=240)
    assert escaped == []
    assert report.complete, report.describe()

    sources = {"event log": tmp_path / "events", "mlflow": tmp_path / "mlflow.db",
               "tensorboard": tmp_path / "tensorboard", "wandb": tmp_path / "wandb"}
    for tracker, source in sources.items():
        (stored,) = read_source(str(source))
        sentinel = sorted(v for m, v in zip(stored.metrics, stored.values) if m == "sentinel")
        assert sentinel == [float(i) for i in range(CALLS)], tracker
