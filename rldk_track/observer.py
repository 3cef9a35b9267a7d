"""The observer contract: what watches a run's records and adds its own (analyzers, the system
sampler, checkpoint health), and the one loop that feeds records to observers.

A live run's dispatcher feeds every batch on its log thread after the batch is in the event log;
post-hoc analysis (:mod:`rldk_track.posthoc`) feeds a finished run's records the same way. In
both, what observers emit is delivered (numbered, logged) and shown to every observer in turn,
until they emit nothing; at the run's end each observer's optional ``finish()`` adds its last
records. An observer that raises is reported once (it is still shown later batches) and the
others go on: an analyzer bug never stops logging.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Iterable, Protocol, Sequence

from rldk_track.records import Record

log = logging.getLogger("rldk_track")


class Observer(Protocol):
    """Sees batches of records (in ``seq`` order, after they are logged) and returns new records
    to log after them (``seq=-1``; their ``seq`` is assigned when they are delivered).

    It may also define ``finish() -> Iterable[Record]``: records to add before the run ends
    (a summary, a last alert). It runs on the dispatcher's log thread, never the training thread,
    so it must not block for long; it never touches a tracker.
    """

    def observe(self, records: Sequence[Record]) -> Iterable[Record] | None: ...


def is_observer(obj: Any) -> bool:
    """True for anything with a callable ``observe(records)``."""
    return callable(getattr(obj, "observe", None))


class Observers:
    """The observers of one run, with the ids of those that already failed (reported once).

    ``add`` is copy-on-write so another thread may add an observer while the log thread feeds.
    """

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        self._observers: list[Observer] = list(observers)
        self._failed: set[int] = set()

    def add(self, observer: Observer) -> None:
        """Show later batches to ``observer`` too."""
        self._observers = [*self._observers, observer]

    def feed(self, delivered: Sequence[Record], deliver: Callable[[list[Record]], list[Record]]) -> None:
        """Show ``delivered`` records to every observer; ``deliver`` what they emit (it returns the
        records as delivered, e.g. numbered) and show those in turn, until nothing is emitted."""
        batch = list(delivered)
        while batch:
            emitted = self._collect(lambda o: o.observe(batch))
            batch = deliver(emitted) if emitted else []

    def finish(self) -> list[Record]:
        """What the observers add at the run's end (each one's optional ``finish()``)."""
        return self._collect(_finish_of)

    def _collect(self, call: Callable[[Any], Iterable[Record] | None]) -> list[Record]:
        """``call`` each observer and collect what they emit, ordered by step (stably, so one
        rule's alerts keep their order)."""
        emitted: list[Record] = []
        for observer in self._observers:
            try:
                emitted.extend(call(observer) or ())
            except Exception as exc:
                if id(observer) not in self._failed:
                    self._failed.add(id(observer))
                    log.exception("rldk_track: observer %r failed: %s", observer, exc)
        emitted.sort(key=lambda r: getattr(r, "step", math.inf))
        return emitted


def _finish_of(observer: Any) -> Iterable[Record]:
    finish = getattr(observer, "finish", None)
    return finish() if callable(finish) else ()
