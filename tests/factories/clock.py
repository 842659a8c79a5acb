"""UTC time that only moves when a test says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """UTC time that only moves when a test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
