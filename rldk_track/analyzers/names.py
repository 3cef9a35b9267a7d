"""Which metric keys a rule reads: the canonical name first, then the raw names it comes from.

The TRL callback logs canonical names next to the originals; a plain loop logs whatever it likes
(``kl``, ``entropy``, ``grad_norm``). So a rule asks for ``kl/mean`` and also accepts every raw key
that the key maps in :mod:`rldk_track.keymaps` translate to it, plus a few common plain-loop names.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Generic, Mapping, TypeVar

from rldk_track.keymaps import KEYMAPS

#: Names plain training loops commonly use that no framework key map lists.
_PLAIN_LOOP: dict[str, tuple[str, ...]] = {
    "kl/mean": ("kl", "kl_div", "kl_divergence", "kl_mean"),
    "kl/coef": ("kl_coef", "kl_coeff", "beta"),
    "entropy/mean": ("entropy", "entropy_mean", "policy_entropy"),
    "clip/ratio": ("clip_ratio", "clip_frac", "clipfrac", "clip_fraction"),
    "grad/norm": ("grad_norm", "gradient_norm"),
    "loss/total": ("loss",),
    "loss/policy": ("policy_loss",),
    "reward/mean": ("reward", "reward_mean", "rewards"),
    "reward/std": ("reward_std",),
    "reward/accuracy": ("accuracy", "reward_accuracy"),
    "length/response_mean": ("response_length", "completion_length", "length"),
}

#: A per-function reward component: ``reward/<fn>/mean`` (canonical) or TRL's ``rewards/<fn>/mean``.
REWARD_COMPONENT = re.compile(r"^rewards?/(?P<fn>[^/]+)/mean$")


@lru_cache(maxsize=None)
def aliases(canonical: str) -> tuple[str, ...]:
    """``canonical`` followed by every raw key that means the same thing, in a fixed order."""
    names = [canonical]
    for table in KEYMAPS.values():
        names += sorted(raw for raw, name in table.items() if name == canonical)
    names += _PLAIN_LOOP.get(canonical, ())
    return tuple(dict.fromkeys(names))


def pick(values: Mapping[str, float], names: tuple[str, ...]) -> tuple[str, float] | None:
    """The first of ``names`` present in ``values`` with a finite value, as ``(key, value)``.

    Non-finite values are skipped here on purpose: the ``nonfinite`` rule reports them, and every
    other rule would only raise a second, less precise alert about the same NaN.
    """
    for name in names:
        value = values.get(name)
        if value is not None and value - value == 0.0:  # stats.is_finite, inlined: ~26 picks a record
            return name, value
    return None


T = TypeVar("T")


class ByKeys(Generic[T]):
    """``build(keys)`` of a record's keys (in order), computed once per distinct key set.

    The records of a run nearly all have the same keys, so what a rule derives from the keys alone
    (which of them are reward components, which alias of a metric is present) is worked out once,
    not by scanning every key of every record. At most ``size`` key sets are kept (then it starts
    over), so a run whose keys keep changing costs memory for ``size`` of them only.
    """

    __slots__ = ("build", "size", "_cache", "_last")

    def __init__(self, build: Callable[[tuple[str, ...]], T], size: int = 64) -> None:
        self.build = build
        self.size = size
        self._cache: dict[tuple[str, ...], T] = {}
        self._last: tuple[tuple[str, ...], T] | None = None  # the previous call's keys and result

    def __call__(self, values: Mapping[str, float]) -> T:
        keys = tuple(values)
        last = self._last
        if last is not None and keys == last[0]:
            return last[1]  # the same keys as the previous record: no hash of the key tuple
        found = self._cache.get(keys)
        if found is None:
            if len(self._cache) >= self.size:
                self._cache.clear()
            found = self._cache[keys] = self.build(keys)
        self._last = (keys, found)
        return found


def _component_keys(keys: tuple[str, ...]) -> tuple[tuple[str, str, bool], ...]:
    """``(key, fn, canonical)`` for each reward-component key among ``keys``, in their order."""
    out = []
    for key in keys:
        match = REWARD_COMPONENT.match(key)
        if match:
            out.append((key, match["fn"], key.startswith("reward/")))
    return tuple(out)


_components_of = ByKeys(_component_keys)


def reward_components(values: Mapping[str, float]) -> dict[str, tuple[str, float]]:
    """Finite per-function reward means in ``values``: ``{fn: (key, value)}``, canonical keys first."""
    found: dict[str, tuple[str, float]] = {}
    for key, fn, canonical in _components_of(values):
        value = values[key]
        if value - value == 0.0 and (canonical or fn not in found):  # finite (stats.is_finite)
            found[fn] = (key, value)
    return found
