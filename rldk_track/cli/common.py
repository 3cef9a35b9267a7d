"""What the read-side commands (compare, analyze) share: loading sources, errors, output."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from rldk_track.readers.runset import RunSet

BAD_INPUT = 2


def load(sources: Sequence[str], tracking_uri: str | None, progress: bool) -> "RunSet":
    """The runs of ``sources``; progress bars on a terminal unless ``progress`` is False."""
    # MLflow draws its own bar for every artifact download (the reader fetches a few small files),
    # and TensorBoard's loader reports each event file it opens at INFO.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("tensorboard").setLevel(logging.WARNING)
    from rldk_track.readers import load_runs

    return load_runs(list(sources), tracking_uri=tracking_uri, progress=None if progress else False)


def fail(exc: BaseException) -> int:
    """Report a bad input on stderr (no traceback) and return exit code 2."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    print(f"rldk-track: error: {message}", file=sys.stderr)
    return BAD_INPUT


def write_output(text: str, path: str | None) -> None:
    """``text`` to ``path`` (reported on stderr), or to stdout."""
    if path:
        Path(path).write_text(text, encoding="utf-8")
        print(f"written to {path}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
