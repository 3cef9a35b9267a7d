"""Post-hoc analysis: replay the analyzers over a finished run read back from any tracker
(:mod:`~rldk_track.posthoc.replay`) and add what they found to the run where it lives
(:mod:`~rldk_track.posthoc.writeback`), through the same observer feed and delivery machinery a
live run uses (``rldk-track analyze --write``, ``rldk-track compare --attach``)."""

from __future__ import annotations

from rldk_track.posthoc.replay import analyze_run, metric_records, replay
from rldk_track.posthoc.writeback import WriteBackError, WriteBackResult, write_back

__all__ = ["WriteBackError", "WriteBackResult", "analyze_run", "metric_records", "replay", "write_back"]
