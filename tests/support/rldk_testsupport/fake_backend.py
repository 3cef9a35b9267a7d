"""A controllable in-memory backend for unit tests of the dispatcher's own logic.

Real trackers are tested against the real thing in ``tests/backends``; this fake only stands in
where the point is our retry, ordering, catch-up and shutdown logic.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping, Sequence

import pytest

from rldk_track import backends as registry
from rldk_track.backends.base import Backend, RejectedError, Resume
from rldk_track.records import Record, RunEnd

#: Every FakeBackend created, by run id (the test reads what "the tracker" stored).
STORES: dict[str, "FakeStore"] = {}


class FakeStore:
    def __init__(self) -> None:
        self.records: list[Record] = []
        self.opens: list[Mapping[str, Any] | None] = []
        self.resumes: list[Resume] = []  # what each open was handed
        self.status: str | None = None
        self.down = False
        self.gate = threading.Event()  # cleared = writes hang
        self.gate.set()
        self.reject: Callable[[Record], bool] = lambda r: False
        self.write_calls = 0

    def metrics(self, key: str) -> list[tuple[int, float]]:
        return [(r.step, r.values[key]) for r in self.records if r.kind == "metrics" and key in r.values]


class FakeBackend(Backend):
    name = "fake"
    max_batch = 100

    def __init__(self, run, options=None) -> None:
        super().__init__(run, options)
        self.store = STORES.setdefault(run.run_id, FakeStore())

    def open(self, state, resume):
        if self.store.down:
            raise ConnectionError("fake tracker is down")
        self.store.opens.append(state)
        self.store.resumes.append(resume)
        return {"fake_run": self.run.run_id, "opened": len(self.store.opens)}

    def write(self, records: Sequence[Record]) -> None:
        self.store.gate.wait()
        self.store.write_calls += 1
        if self.store.down:
            raise ConnectionError("fake tracker is down")
        bad = [r for r in records if self.store.reject(r)]
        if bad:
            raise RejectedError(f"fake tracker refuses seq {bad[0].seq}")
        for r in records:
            if isinstance(r, RunEnd):
                self.store.status = r.status
        self.store.records.extend(records)


@pytest.fixture
def fake_backend(monkeypatch):
    """Registers the fake backend as ``"fake"``; yields the dict of stores by run id."""
    registry.register("fake", FakeBackend)
    monkeypatch.setattr("rldk_track.dispatch.RETRY_INITIAL_S", 0.05)
    monkeypatch.setattr("rldk_track.dispatch.RETRY_MAX_S", 0.2)
    STORES.clear()
    yield STORES
    registry._registered.pop("fake", None)
