"""The one timestamp format of every export: ISO 8601 in UTC with milliseconds and a ``Z`` (2026-05-01T09:30:00.125Z).

The database hands back naive UTC; a naive time is taken to be UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_z(t: datetime | None) -> str:
    if t is None:
        return ""
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
