"""Readers: turn what a tracker stored back into plain Python data (for tests, compare and sync
checks), each reading the tracker's own on-disk or server format."""
