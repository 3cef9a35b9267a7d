"""``rldk-track``: one sub-command per module in this package.

Each command module has ``register(subparsers)``, which adds its parser and sets ``func`` to a
function taking the parsed arguments and returning the exit code.
Exit codes: 0 done, 1 done but something is incomplete (pending records, alerts found),
2 bad usage or input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NoReturn, Sequence

from rldk_track.version import __version__

COMMANDS = ["list", "sync", "demo", "compare", "analyze", "export", "doctor", "ui", "openrlhf", "merge", "samples"]


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: what is wrong and where the help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="rldk-track",
        description="Put RLHF training runs into MLflow, W&B and TensorBoard, and compare them.",
    )
    parser.add_argument("--version", action="version", version=f"rldk-track {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"rldk_track.cli.{name}").register(sub)
    for command in sub.choices.values():  # -v after the command too; SUPPRESS keeps one given before it
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="show debug messages")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
