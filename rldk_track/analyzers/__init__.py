"""Analyzers: small stateful detectors over the metric stream, plus checkpoint health.

``rldk_track.init(analyzers="default")`` (and the TRL callback) turns each rule into a dispatcher
observer: it sees every ``Metrics`` record (the sample rules: every ``Samples`` record) on the log
thread, never on the training thread, and returns ``Alert`` records that are logged like any other. Rules never touch a tracker, so they are
tested by feeding them ``(step, values)`` directly::

    from rldk_track.analyzers import KLSpike
    rule = KLSpike(z=6)
    alerts = rule.update(step, {"kl": 0.02})

Every rule, its formula and its defaults are in ``docs/analyzers.md``.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from rldk_track.analyzers.entropy import EntropyCollapse
from rldk_track.analyzers.kl import KLControllerStuck, KLDrift, KLRunaway, KLSpike
from rldk_track.analyzers.length import Truncation
from rldk_track.analyzers.nonfinite import NonFinite, RewardNonFinite
from rldk_track.analyzers.optimization import ClipSaturation, GradExplosion, LossDivergence, UpdateSpike
from rldk_track.analyzers.reward_hacking import RewardHacking
from rldk_track.analyzers.reward_reliability import RewardReliability
from rldk_track.analyzers.reward_shift import RewardShift
from rldk_track.analyzers.rule import Check, Episode, Rule
from rldk_track.analyzers.sample_rules import DegenerateOutputs, LengthHacking, RewardOutliers
from rldk_track.analyzers.signal import NoLearningSignal
from rldk_track.analyzers.trends import Trends
from rldk_track.observer import Observer, is_observer

#: Every metric-stream rule by name (the ``rule`` field of its alerts). ``"default"`` runs them all.
RULES: dict[str, type[Rule]] = {
    cls.name: cls
    for cls in (
        NonFinite, RewardNonFinite, KLSpike, KLDrift, KLRunaway, KLControllerStuck, EntropyCollapse,
        ClipSaturation, GradExplosion, LossDivergence, UpdateSpike, RewardShift, RewardHacking, Truncation, NoLearningSignal,
        RewardReliability, Trends, LengthHacking, DegenerateOutputs, RewardOutliers,
    )
}

AnalyzerSpec = str | Mapping[str, Any] | list[Any] | tuple[Any, ...] | Observer | None

__all__ = [
    "RULES", "Check", "ClipSaturation", "DegenerateOutputs", "EntropyCollapse", "Episode", "GradExplosion",
    "KLControllerStuck", "KLDrift", "KLRunaway", "KLSpike", "LengthHacking", "LossDivergence", "NoLearningSignal",
    "NonFinite", "RewardHacking", "RewardNonFinite", "RewardOutliers", "RewardReliability", "RewardShift", "Rule",
    "Trends", "Truncation", "UpdateSpike",
    "build_observers",
]


def build_observers(spec: AnalyzerSpec) -> list[Observer]:
    """Fresh observers for one run from ``spec``:

    * ``"default"``: every rule in :data:`RULES` with its documented defaults;
    * ``"kl_spike,nonfinite"`` or ``["kl_spike", "nonfinite"]``: only the named rules;
    * ``{"kl_spike": {"z": 6}, "entropy_collapse": False}``: the default rules, with options for
      some (``False``/``None`` turns one off, ``True`` keeps its defaults);
    * a list may also hold such mappings, ``"default"``, and ready-made observers (anything with
      ``observe(records)``), which are used as they are.

    An unknown rule name or option raises ``ValueError`` naming the valid ones.
    """
    if not spec:
        return []
    if isinstance(spec, str):
        items: list[Any] = [name.strip() for name in spec.split(",") if name.strip()]
    elif isinstance(spec, Mapping):
        items = ["default", spec]
    elif isinstance(spec, (list, tuple)):
        items = list(spec)
    elif is_observer(spec):
        return [spec]
    else:
        raise TypeError(f"analyzers must be 'default', rule names, a mapping of rule options or observers, "
                        f"not {type(spec).__name__}")

    chosen: dict[str, dict[str, Any] | None] = {}  # rule name -> options (None: turned off)
    ready: list[Observer] = []
    for item in items:
        if isinstance(item, str):
            for name in (RULES if item == "default" else [item]):
                chosen.setdefault(_known(name), {})
        elif isinstance(item, Mapping):
            for name, options in item.items():
                chosen[_known(name)] = _options(name, options)
        elif is_observer(item):
            ready.append(item)
        else:
            raise TypeError(f"analyzers: {item!r} is not a rule name, a mapping of rule options, or an observer")
    return [_build(name, options) for name, options in chosen.items() if options is not None] + ready


def _known(name: Any) -> str:
    if name not in RULES:
        raise ValueError(f"unknown analyzer {name!r}; known: default, {', '.join(RULES)}")
    return name


def _options(name: str, options: Any) -> dict[str, Any] | None:
    if options is True:
        return {}
    if options is False or options is None:
        return None
    if not isinstance(options, Mapping):
        raise TypeError(f"analyzers: options for {name!r} must be a mapping, True or False, not {options!r}")
    return dict(options)


def _build(name: str, options: dict[str, Any]) -> Rule:
    cls = RULES[name]
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"analyzer {name!r} has no option {', '.join(map(repr, unknown))}; "
                         f"its options are: {', '.join(accepted)}")
    return cls(**options)
