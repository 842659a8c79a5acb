"""The command-line convention of ``python -m scoft COMMAND`` (the same as ``app.*`` and ``analysis.*``, see the
README): ``--quiet`` hides progress bars (``--no-progress`` still works, unlisted, for older scripts); errors go to
stderr as ``PROG: error: MESSAGE``; exit 0 on success, 2 for usage or validation errors."""

from __future__ import annotations

import argparse
import sys

USAGE = 2


def add_quiet(parser: argparse.ArgumentParser, help_text: str = "hide progress bars") -> None:
    """``--quiet`` (stored as ``args.quiet``), with ``--no-progress`` as a hidden alias."""
    parser.add_argument("--quiet", action="store_true", help=help_text)
    parser.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)


def error(prog: str, message: object) -> int:
    """Print one ``PROG: error: MESSAGE`` line to stderr; returns the usage/validation exit status."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return USAGE
