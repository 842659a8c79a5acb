"""The command-line convention of every ``python -m app.*`` command (and of ``scoft`` and ``analysis.*``, see the
README): ``--quiet`` hides progress bars; errors go to stderr as ``PROG: error: MESSAGE`` (argparse's own style, so a
usage error and a refused request read alike); exit 0 on success, 2 for usage or validation errors (bad arguments,
an invalid design or manifest, an unknown round, a request the round's state refuses), 1 for runtime failures (the
database or a file cannot be reached)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from sqlalchemy.exc import OperationalError

OK, RUNTIME, USAGE = 0, 1, 2


def error(prog: str, message: str, *details: str) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)
    for line in details:
        print(f"  {line}", file=sys.stderr)


def run(prog: str, body: Callable[[], int]) -> int:
    """Run a command body; a database or file failure becomes exit 1 with one ``PROG: error:`` line."""
    try:
        return body()
    except OperationalError as err:
        error(prog, f"database: {str(err.orig).strip().splitlines()[0] if err.orig else err}")
    except OSError as err:
        error(prog, str(err))
    return RUNTIME
