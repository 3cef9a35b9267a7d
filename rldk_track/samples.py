"""Sample rows (prompts, completions, rewards...) as bounded, JSON-safe :class:`Samples` records.

``run.log_samples(rows, step=...)`` only copies the caller's rows onto the queue (the training
thread pays microseconds); the dispatcher's log thread turns them into a table with
:class:`SampleBounder` before the record is numbered and written to the event log. The bounds,
:class:`SampleLimits`, and their defaults:

=================  =======  ============================================================
``max_rows``       64       rows kept per record (the first ones; the rest are counted in a note)
``max_cell_chars`` 4000     characters kept per text cell (the rest replaced by a marker that
                            says how long the text was)
``every``          1        ``log_samples`` records steps divisible by ``every`` only
=================  =======  ============================================================

A cell is kept as text, a number, a boolean or None. What cannot be kept as given is converted,
and each kind of conversion is reported once per run (a warning) and noted on the record:
non-UTF-8 bytes are decoded with U+FFFD replacements, lone surrogates become U+FFFD, lists and
dicts (chat messages) become JSON text, images become a placeholder, other objects their ``str``.
Nothing is dropped silently and nothing raises into training.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rldk_track.normalize import to_jsonable
from rldk_track.records import Samples

log = logging.getLogger("rldk_track")

#: The text that replaces the cut end of a long cell; ``{total}`` is the cell's full length.
TRUNCATION_MARK = " …[truncated by rldk_track: {total} characters]"


@dataclass(frozen=True)
class SampleLimits:
    """How much of each sample set a run records (see the module docstring for the defaults)."""

    max_rows: int = 64
    max_cell_chars: int = 4000
    every: int = 1

    def __post_init__(self) -> None:
        for name in ("max_rows", "max_cell_chars", "every"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"SampleLimits.{name} must be a positive integer, not {value!r}")

    def wants(self, step: int) -> bool:
        """Whether samples at ``step`` are recorded (every ``every``-th step)."""
        return step % self.every == 0


def copy_rows(rows: Any) -> Any:
    """The caller's rows, copied just enough that changing them later does not change the record
    (on the training thread, so only shallow copies): a list of row mappings, a mapping of
    columns, or a DataFrame's copy. Raises TypeError for anything else."""
    kind = type(rows)
    if kind is list or kind is tuple:
        return [row.copy() if type(row) is dict else dict(row) if isinstance(row, Mapping) else row for row in rows]
    if kind is dict or isinstance(rows, Mapping):
        return {key: list(column) for key, column in rows.items()}
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        return rows.copy()
    raise TypeError(
        "log_samples takes a list of row dicts, a dict of columns or a pandas DataFrame, "
        f"not {type(rows).__name__}"
    )


def row_count(record: Samples) -> int:
    """How many rows ``record`` holds, cheaply (the training thread weighs a queued record by it):
    its raw rows as :func:`copy_rows` left them (a list, a mapping's first column, a DataFrame),
    else its bounded ``rows``."""
    raw = record.raw
    if raw is None:
        return len(record.rows)
    if type(raw) is dict:
        return len(next(iter(raw.values()), ()))
    return len(raw)


class SampleBounder:
    """Turns a :class:`Samples` record's raw rows into its bounded table (on the log thread),
    warning once per kind of conversion for the whole run."""

    def __init__(self, limits: SampleLimits | None = None) -> None:
        self.limits = limits or SampleLimits()
        self._warned: set[str] = set()

    def bound(self, record: Samples) -> Samples:
        """``record`` with ``columns``/``rows`` filled from ``raw`` within the limits (a record
        without ``raw``, e.g. replayed from the event log, is bounded again as it stands)."""
        source = record.raw if record.raw is not None else [dict(zip(record.columns, row)) for row in record.rows]
        notes: dict[str, str] = {}
        try:
            columns, rows = _table(source)
        except Exception as exc:  # odd input must never raise into the log thread
            columns, rows = ["error"], [[f"samples could not be read: {type(exc).__name__}: {exc}"]]
            notes["unreadable"] = f"the rows could not be read ({type(exc).__name__}: {exc})"
        limits = self.limits
        if len(rows) > limits.max_rows:
            notes["rows"] = f"kept the first {limits.max_rows} of {len(rows)} rows (SampleLimits.max_rows)"
            rows = rows[: limits.max_rows]
        clean_rows = tuple(tuple(_cell(value, limits.max_cell_chars, notes) for value in row) for row in rows)
        for key, note in notes.items():
            if key not in self._warned:
                self._warned.add(key)
                log.warning("rldk_track: samples %r at step %d: %s (reported once per run)", record.name, record.step, note)
        return dataclasses.replace(
            record, columns=tuple(str(c) for c in columns), rows=clean_rows,
            notes=(*record.notes, *(n for n in notes.values() if n not in record.notes)), raw=None,
        )


def _table(source: Any) -> tuple[list[Any], list[list[Any]]]:
    """Column names and rows (lists of raw cells) of a DataFrame, column mapping or row list."""
    if hasattr(source, "to_dict") and hasattr(source, "columns"):
        columns = list(source.columns)
        return columns, [list(row) for row in source.itertuples(index=False, name=None)]
    if isinstance(source, Mapping):
        columns = list(source)
        length = max((len(v) for v in source.values()), default=0)
        return columns, [[_at(source[c], i) for c in columns] for i in range(length)]
    columns = []
    seen: set[Any] = set()
    for row in source:
        for key in row if isinstance(row, Mapping) else ():
            if key not in seen:
                seen.add(key)
                columns.append(key)
    if not columns:  # rows that are not mappings: one "value" column
        return ["value"], [[row] for row in source]
    return columns, [[row.get(c) for c in columns] if isinstance(row, Mapping) else [row] + [None] * (len(columns) - 1)
                     for row in source]


def _at(column: Sequence[Any], index: int) -> Any:
    return column[index] if index < len(column) else None


def _cell(value: Any, max_chars: int, notes: dict[str, str]) -> Any:
    """One cell as text, a number, a boolean or None; conversions are noted in ``notes``."""
    kind = type(value)
    if value is None or kind is bool or kind is str and len(value) <= max_chars and value.isascii():
        return value
    if kind is int:
        return value if -(2**63) <= value < 2**63 else float(value)
    if kind is float:
        return value
    if isinstance(value, str):
        return _text(value, max_chars, notes)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            notes["bytes"] = "non-UTF-8 bytes were decoded with U+FFFD replacements"
            text = raw.decode("utf-8", "replace")
        return _text(text, max_chars, notes)
    if isinstance(value, numbers.Integral):  # numpy ints
        return _cell(int(value), max_chars, notes)
    if isinstance(value, numbers.Real):  # numpy floats
        return float(value)
    if _is_missing(value):  # pandas NA / NaT
        return None
    if hasattr(value, "save") and hasattr(value, "size") and hasattr(value, "mode"):  # a PIL image
        notes["image"] = "images are recorded as a placeholder (not the pixels)"
        return f"<image {value.size[0]}x{value.size[1]} {value.mode}>"
    item = getattr(value, "item", None)
    if callable(item) and _size(value) == 1:  # one-element tensor or array
        try:
            return _cell(item(), max_chars, notes)
        except Exception:  # noqa: BLE001 - fall through to its text
            pass
    if isinstance(value, (list, tuple, dict)):
        return _text(json.dumps(to_jsonable(value), ensure_ascii=False, default=str), max_chars, notes)
    notes[f"object:{kind.__name__}"] = f"{kind.__name__} cells are recorded as their text"
    try:
        text = str(value)
    except Exception as exc:  # noqa: BLE001 - a broken __str__
        text = f"<{kind.__name__}: str() failed: {exc}>"
    return _text(text, max_chars, notes)


def _text(text: str, max_chars: int, notes: dict[str, str]) -> str:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            notes["surrogates"] = "lone surrogates were replaced with U+FFFD"
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if len(text) > max_chars:
        notes["truncated"] = f"text cells longer than {max_chars} characters were cut (SampleLimits.max_cell_chars)"
        return text[:max_chars] + TRUNCATION_MARK.format(total=len(text))
    return text


def _size(value: Any) -> int:
    numel = getattr(value, "numel", None)
    try:
        return int(numel()) if callable(numel) else int(getattr(value, "size", 0))
    except (TypeError, ValueError):
        return 0


def _is_missing(value: Any) -> bool:
    try:
        return bool(value != value) and not isinstance(value, (list, tuple, dict))
    except Exception:  # noqa: BLE001 - arrays, NA comparisons
        return type(value).__name__ in ("NAType", "NaTType")


def finite_or_none(value: Any) -> float | None:
    """A numeric cell as a finite float, else None (rewards in analyzers and sorting)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
