"""The one small interface every tracker backend implements.

A backend owns its tracker's rules (name characters, limits, step semantics) and nothing else: it
never sees the training thread, the event log or the cursor files. The dispatcher gives each
backend its own worker thread and calls, in order, ``open`` once (with the state the backend
returned before and its :class:`Resume` position), ``write`` with batches of records in ``seq``
order, and ``close`` when the run ends. An exception from ``open`` or ``write`` is treated as
transient (retried with backoff, the batch kept) unless :func:`refuses_data` says the records
themselves cannot be written (:class:`RejectedError`, or a data error such as UnicodeEncodeError
or OverflowError): then the dispatcher narrows the batch down to the refused records, keeps them
in the rejected file and delivers the rest. ``docs/backends.md`` says how to write one.
"""

from __future__ import annotations

import difflib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

from rldk_track.records import Record

log = logging.getLogger("rldk_track")


class RejectedError(Exception):
    """The tracker refuses these records as such (bad name, value out of range); retrying the
    same batch cannot succeed. The dispatcher narrows it down and reports each refused record."""


#: Errors that say the data cannot be written as it is, wherever they are raised (a lone
#: surrogate that no UTF-8 encoder takes, a number beyond a store's range, a value of a type the
#: tracker's library refuses): retrying the same records cannot succeed.
DATA_ERRORS: tuple[type[Exception], ...] = (UnicodeError, OverflowError, ValueError, TypeError)


def refuses_data(exc: BaseException) -> bool:
    """True when ``exc`` from ``write`` means these records can never be written (a
    :class:`RejectedError` or a :data:`DATA_ERRORS` error); False for what may pass with time (the
    network, a full disk, a tracker that is down: ``requests`` errors are OSErrors even where
    they are also ValueErrors)."""
    if isinstance(exc, RejectedError):
        return True
    return isinstance(exc, DATA_ERRORS) and not isinstance(exc, OSError)


class CannotReopen(Exception):
    """The tracker cannot take records into a run that has ended; the message says why and what
    to do instead."""


class BackendUnavailable(ImportError):
    """The backend's package is not installed; the message says which extra to install."""


@dataclass(frozen=True)
class RunInfo:
    """What a backend needs to know about the run it records."""

    run_id: str
    name: str
    project: str
    dir: Path
    start_time: float
    rank: int = 0
    world_size: int = 1


def _no_records(after_seq: int) -> Iterator[Record]:
    return iter(())


@dataclass(frozen=True)
class Resume:
    """How far this backend got with the run before, as the dispatcher knows it from its cursor.

    ``delivered_seq`` is the last ``seq`` the dispatcher recorded as delivered to this backend
    (-1: none yet, a new run, or ``rldk-track sync --from-start``); after ``open`` the dispatcher
    delivers every record after it. ``records_after(seq)`` yields the run's logged records after
    ``seq`` that this backend supports, in ``seq`` order (none when the event log is off).

    A tracker that keeps what it acknowledged needs neither. One that can lose acknowledged data
    in a crash reads what it did keep and delivers the gap again inside ``open``: W&B's offline
    run file drops its unwritten tail when the process is killed, so the W&B backend resends the
    records between the last row W&B wrote and ``delivered_seq``.
    """

    delivered_seq: int = -1
    records_after: Callable[[int], Iterator[Record]] = _no_records


class Backend(ABC):
    """One tracker. Subclasses set ``name``, ``supports``, ``requires`` and ``accepted_options`` and
    implement the three lifecycle methods; the constructor must be cheap (no imports of the
    tracker, no I/O) and is where a bad option fails, at ``init``, before the run starts."""

    name: ClassVar[str]
    #: The options ``init(options={name: {...}})`` takes: option name -> what it means, in one line
    #: (with its default). Any other name fails at ``init`` with these listed, so a typo never
    #: records somewhere else without a word.
    accepted_options: ClassVar[Mapping[str, str]] = {}
    #: record kinds this backend stores; the dispatcher passes it only these.
    supports: ClassVar[frozenset[str]] = frozenset(
        {"metrics", "params", "tags", "summary", "alert", "artifact", "checkpoint_health", "run_end"}
    )
    #: importable module names this backend needs, and the extra that installs them.
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str] = ""
    #: most records handed to one ``write`` call.
    max_batch: ClassVar[int] = 5000
    #: seconds the worker may wait for more records to fill a batch (0: send at once); a flush
    #: or the run's end cuts the wait short. Trackers with a cost per request set it.
    linger_s: ClassVar[float] = 0.0

    def __init__(self, run: RunInfo, options: Mapping[str, Any] | None = None) -> None:
        self.run = run
        self.options = dict(options or {})
        self._check_options()
        self._warned: set[str] = set()

    def _check_options(self) -> None:
        """Fail fast on an option this backend does not declare, naming the close match and the
        valid ones."""
        accepted = self.accepted_options
        unknown = [str(key) for key in self.options if key not in accepted]
        if not unknown:
            return
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, accepted, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        valid = "".join(f"\n  {key}: {meaning}" for key, meaning in accepted.items()) or " none"
        raise ValueError(f"unknown {self.name} option {', '.join(hints)}; {self.name} options are:{valid}")

    def warn_once(self, key: str, message: str) -> None:
        """Log ``message`` the first time ``key`` comes up: a tracker rule that adapted data (a
        renamed key, a truncated value) is reported once per run, not once per step."""
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    @abstractmethod
    def open(self, state: Mapping[str, Any] | None, resume: Resume) -> Mapping[str, Any]:
        """Start the tracker's run, or resume the one described by ``state`` (what an earlier
        ``open`` or ``write`` returned; None for a new run), given how far delivery got
        (``resume``). Return the state to persist so ``rldk-track sync`` can resume it."""

    @abstractmethod
    def write(self, records: Sequence[Record]) -> Mapping[str, Any] | None:
        """Deliver records (a ``RunEnd`` among them ends the tracker's run with its status).
        Return an updated resume state to persist with the cursor, or None to keep the last one.

        Must be safe to call again with the same records after a failure: trackers either
        de-duplicate (MLflow keys on timestamp+step+value) or the dispatcher's cursor prevents it.
        """

    def close(self) -> None:
        """Release clients and files; the run's status was already given by a ``RunEnd``."""

    def describe(self) -> str:
        """Where the data goes, for messages (``mlflow at http://127.0.0.1:5000``)."""
        return self.name

    @classmethod
    def reopen(cls, origin: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(options, state)`` with which ``open`` continues the ended tracker run that this
        tracker's reader found at ``origin`` (``RunData.origin``), so post-hoc write-back can add
        records to it. Raises :class:`CannotReopen` (the default) when the tracker cannot."""
        raise CannotReopen(f"{cls.name} runs cannot take records after they ended")
