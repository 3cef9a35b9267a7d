"""Turn what a training loop hands us into plain JSON-able values.

Metric values become ``float`` (tensors, numpy scalars, bools, ints); ``None`` means "no value";
anything that cannot be a scalar is reported with a reason instead of being guessed at. Config
values become JSON-able trees. Nothing here does I/O or imports heavy libraries.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import numbers
import types
from pathlib import PurePath
from typing import Any, Mapping


class NotAScalar(ValueError):
    """A metric value that cannot be a single float; the message says why."""


def to_scalar(value: Any) -> float:
    """``value`` as a float, or :class:`NotAScalar` saying why it is not one.

    Accepts Python numbers and bools, numpy scalars and 1-element arrays, and tensors with one
    element (``.item()`` is the only device synchronisation this does, on a value the caller gave).
    """
    kind = type(value)
    if kind is float:
        return value
    try:
        if kind is int or kind is bool:
            return float(value)
        if isinstance(value, (str, bytes)):
            raise NotAScalar(f"is a {kind.__name__} ({_preview(value)}), not a number")
        if isinstance(value, numbers.Real):  # numpy scalars register as Real
            return float(value)
        item = getattr(value, "item", None)
        if callable(item):
            count = _element_count(value)
            if count != 1:
                raise NotAScalar(f"is a {kind.__name__} with {count} elements; log one number (e.g. .mean())")
            return float(item())
    except NotAScalar:
        raise
    except OverflowError:
        raise NotAScalar(f"is a {kind.__name__} beyond the range of a float") from None
    except Exception as exc:  # a meta-device tensor, a tensor whose element is not a number
        raise NotAScalar(f"is a {kind.__name__} that has no number to read ({type(exc).__name__}: {str(exc)[:100]})") from None
    raise NotAScalar(f"is a {kind.__name__}, not a number")


def _element_count(value: Any) -> int:
    numel = getattr(value, "numel", None)
    if callable(numel):
        return int(numel())
    size = getattr(value, "size", 1)
    return int(size() if callable(size) else size)


def _preview(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def metric_name(key: Any) -> str:
    """A metric/param/tag key as a string, otherwise as given: backends apply their own character
    rules (and detect collisions), so two distinct names never merge here."""
    return key if type(key) is str else str(key)


def to_jsonable(value: Any, _depth: int = 0) -> Any:
    """A JSON-able copy of a config value: dataclasses and mappings become dicts, sequences
    lists, numpy/tensor scalars numbers, enums their value, anything else its ``str``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if _depth > 32:
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, _depth + 1)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (argparse.Namespace, types.SimpleNamespace)):
        value = vars(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, Mapping):
        try:
            value = to_dict()
        except Exception:  # a to_dict that needs arguments or fails: fall back to str
            return str(value)
    if isinstance(value, Mapping):
        return {metric_name(k): to_jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v, _depth + 1) for v in value]
    if isinstance(value, bytes):
        return _preview(value, 200)
    try:
        return to_scalar(value)
    except NotAScalar:
        return str(value)


def valid_text(value: Any) -> Any:
    """``value`` (a string or a JSON-able tree) with every lone surrogate written out as its
    escape (``"kl\\ud800"``), the same object when there is none. A lone surrogate (from a
    bytes-to-str decoding with ``surrogateescape``) is not text: no UTF-8 encoder takes it, and
    W&B's run ends, MLflow's request fails and TensorBoard's writer refuses it. Escaped, distinct
    names stay distinct and every tracker stores the same name."""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, Mapping):
        cleaned = {valid_text(k): valid_text(v) for k, v in value.items()}
        same = all(a is b for a, b in zip(value, cleaned)) and all(value[k] is cleaned[k] for k in value)
        return value if same else cleaned
    if isinstance(value, (list, tuple)):
        items = [valid_text(v) for v in value]
        return value if all(a is b for a, b in zip(value, items)) else type(value)(items)
    return value


def deep_merge(into: dict[str, Any], tree: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``tree`` into ``into`` and return it: nested mappings merge (copied as dicts),
    anything else replaces. How a run's config grows when ``log_params`` is called again."""
    for key, value in tree.items():
        if isinstance(value, Mapping):
            current = into.get(key)
            into[key] = deep_merge(current if isinstance(current, dict) else {}, value)
        else:
            into[key] = value
    return into


def flatten(tree: Mapping[str, Any], sep: str = "/", prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, sep, name))
        else:
            flat[name] = value
    return flat
