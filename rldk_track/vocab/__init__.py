"""Each tracker's vocabulary: the tag, key, artifact and file names rldk_track's backend for it
writes and its reader reads back, in one small module per tracker that both import.

A name changes here or nowhere; the backend (``rldk_track/backends/<tracker>.py``) owns the
tracker's rules, the reader (``rldk_track/readers/<tracker>.py``) maps what is stored back, and
neither imports the other. The alert policy (what ``alerts/count`` and ``rldk.health`` mean) is
:mod:`rldk_track.alerts`, shared by every tracker.
"""
