"""Parsing of rank values and path positions from untrusted text (pure): ASCII digits only, bounded length.

Both look at the text before converting it, so a 5,000-digit value is refused without building a huge int, and
non-ASCII digits (``"١"``, full-width ``"１"``), signs, spaces, underscores and NUL bytes never reach ``int()``.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
POSITION_LIMIT = 2**31  # fits a PostgreSQL integer and SQLite's 64-bit one


def _ascii_int(value: object, max_digits: int) -> int | None:
    if not isinstance(value, str) or not 0 < len(value) <= max_digits or not _DIGITS.fullmatch(value):
        return None
    return int(value)


def parse_rank(value: str, k: int) -> int | None:
    """The rank ``1..k`` written as plain ASCII digits (no sign, space or leading zero), else None."""
    if k < 1:
        return None
    n = _ascii_int(value, len(str(k)))
    if n is None or not 1 <= n <= k or value != str(n):
        return None
    return n


def parse_position(value: str) -> int | None:
    """A page position ``0 … 2^31 - 1`` from a URL path (plain ASCII digits, no leading zero), else None."""
    n = _ascii_int(value, len(str(POSITION_LIMIT)))
    if n is None or n >= POSITION_LIMIT or value != str(n):
        return None
    return n
