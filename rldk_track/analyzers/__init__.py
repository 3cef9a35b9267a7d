"""Analyzers: pure functions and small stateful detectors that turn metrics and checkpoints into records."""
