"""Synthetic metric streams for the analyzer tests: healthy runs with realistic noise, seeded.

``healthy_run(seed, steps, kind)`` returns one ``{metric: value}`` dict per step, shaped like a
real run of that kind (canonical names, as the TRL callback logs them):

* ``"grpo"``: reward rising and saturating, KL growing from ~0 to ~0.03 with multiplicative
  noise, entropy slowly falling (-25 % over the run), small clip ratio, heavy-tailed gradient
  norms, a GRPO loss around zero, two reward components both improving, ``frac_zero_std``;
* ``"ppo"``: like grpo plus an adaptive KL controller (``kl/coef`` moving toward a KL target);
* ``"sft"``: a decreasing loss with noise, gradient norms, entropy falling moderately.

``feed(rule, stream, start=0)`` feeds a rule each step's values and returns the alerts. Tests
get both (and ``raised``/``cleared`` filters) from the ``streams`` fixture.
"""

from __future__ import annotations

import math
import random
from typing import Iterable, Mapping

import pytest

from rldk_track.records import Alert

Stream = list[dict[str, float]]


def healthy_run(seed: int, steps: int = 400, kind: str = "grpo") -> Stream:
    rng = random.Random(seed)
    out: Stream = []
    coef = 0.05
    for t in range(steps):
        progress = t / steps
        values: dict[str, float] = {}
        values["grad/norm"] = 0.8 * rng.lognormvariate(0, 0.35) * (1.5 if rng.random() < 0.03 else 1.0)
        values["lr"] = 1e-6 * min(1.0, (t + 1) / 20)
        if kind == "sft":
            values["loss/total"] = 0.9 + 1.6 * math.exp(-t / 60) + rng.gauss(0, 0.06)
            values["entropy/mean"] = (1.1 + 0.9 * math.exp(-t / 80)) * rng.lognormvariate(0, 0.04)
            out.append(values)
            continue
        reward = 0.2 + 0.5 / (1 + math.exp(-(t - steps * 0.4) / (steps * 0.12)))
        values["reward/mean"] = reward + rng.gauss(0, 0.04)
        values["reward/std"] = max(0.02, 0.35 - 0.1 * progress + rng.gauss(0, 0.03))
        values["reward/frac_zero_std"] = min(1.0, max(0.0, 0.15 + 0.2 * progress + rng.gauss(0, 0.06)))
        values["reward/format/mean"] = min(1.0, 0.3 + 0.6 * progress + rng.gauss(0, 0.05))
        values["reward/correct/mean"] = 0.1 + 0.4 * progress + rng.gauss(0, 0.05)
        kl_level = 0.03 * (1 - math.exp(-(t + 1) / 60))
        values["kl/mean"] = kl_level * rng.lognormvariate(0, 0.3)
        values["entropy/mean"] = 1.2 * (1 - 0.25 * progress) * rng.lognormvariate(0, 0.04)
        values["clip/ratio"] = max(0.0, 0.03 + rng.gauss(0, 0.015))
        values["loss/total"] = rng.gauss(0, 0.02) + 0.04 * values["kl/mean"]
        values["length/response_mean"] = 120 + 15 * progress + rng.gauss(0, 6)
        if kind == "ppo":
            error = max(-0.2, min(0.2, values["kl/mean"] / 0.02 - 1))
            coef *= 1 + error * 0.05
            values["kl/coef"] = coef
        out.append(values)
    return out


def feed(rule, stream: Iterable[Mapping[str, float]], start: int = 0) -> list[Alert]:
    alerts: list[Alert] = []
    for step, values in enumerate(stream, start):
        alerts.extend(rule.update(step, values))
    return alerts


class Streams:
    """What the analyzer tests share, handed out by the ``streams`` fixture."""

    healthy = staticmethod(healthy_run)
    feed = staticmethod(feed)

    @staticmethod
    def raised(alerts: list[Alert]) -> list[Alert]:
        return [a for a in alerts if a.state == "raised"]

    @staticmethod
    def cleared(alerts: list[Alert]) -> list[Alert]:
        return [a for a in alerts if a.state == "cleared"]


@pytest.fixture
def streams() -> type[Streams]:
    return Streams
