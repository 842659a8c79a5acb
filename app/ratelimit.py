"""Enrolment rate limits (pure, injectable clock): token buckets per (client address, round) and per round.

A bucket holds at most ``burst`` tokens and refills at ``per_minute / 60`` tokens a second; an enrolment takes
one token from the client's bucket and one from the round's, and is allowed only when both have one (a refused
request takes nothing). Memory is O(1) per key (two floats) and bounded: buckets are kept in least-recently-used
order; a bucket that has refilled completely is the same as a fresh one and is dropped, and when ``max_keys`` is
reached under a flood of distinct addresses the least recently used client bucket is dropped (the round's bucket
still caps the total, so a flood cannot buy more enrolments by evicting itself).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.config import Settings


@dataclass(frozen=True, slots=True)
class Limit:
    """``per_minute`` tokens a minute, at most ``burst`` at once; ``per_minute = 0`` means no limit."""

    per_minute: float
    burst: float

    def __post_init__(self) -> None:
        if self.per_minute < 0 or self.burst < 0 or (self.per_minute > 0 and self.burst < 1):
            raise ValueError("a limit needs per_minute >= 0 and, when limited, burst >= 1")

    @property
    def unlimited(self) -> bool:
        return self.per_minute == 0

    @property
    def refill_seconds(self) -> float:
        """Seconds for an empty bucket to fill up again."""
        return self.burst * 60 / self.per_minute


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until a request would be allowed (0 when allowed)

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` value: whole seconds, rounded up, at least 1 when refused."""
        return str(max(1, math.ceil(self.retry_after))) if not self.allowed else "0"


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    def __init__(
        self,
        *,
        per_client: Limit,
        per_round: Limit,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 50_000,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.per_client = per_client
        self.per_round = per_round
        self.clock = clock
        self.max_keys = max_keys
        self._clients: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._rounds: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Buckets held (clients and rounds)."""
        return len(self._clients) + len(self._rounds)

    def check(self, client: str, round_id: str) -> Decision:
        """Take one enrolment for ``client`` in ``round_id`` if both its buckets allow it."""
        now = self.clock()
        with self._lock:
            self._evict(now)
            c = self._level(self._clients, (client, round_id), self.per_client, now)
            r = self._level(self._rounds, round_id, self.per_round, now)
            waits = [self._wait(b, lim) for b, lim in ((c, self.per_client), (r, self.per_round))]
            if max(waits) > 0:
                return Decision(False, max(waits))
            for b, lim in ((c, self.per_client), (r, self.per_round)):
                if b is not None and not lim.unlimited:
                    b.tokens -= 1
            return Decision(True, 0.0)

    @staticmethod
    def _wait(bucket: _Bucket | None, limit: Limit) -> float:
        if bucket is None or limit.unlimited or bucket.tokens >= 1:
            return 0.0
        return (1 - bucket.tokens) * 60 / limit.per_minute

    def _level(self, table: OrderedDict, key, limit: Limit, now: float) -> _Bucket | None:
        """The key's bucket refilled to ``now`` (created full when absent); None when unlimited."""
        if limit.unlimited:
            return None
        b = table.get(key)
        if b is None:
            if table is self._clients and len(table) >= self.max_keys:
                table.popitem(last=False)
            b = table[key] = _Bucket(limit.burst, now)
        else:
            elapsed = max(0.0, now - b.updated)
            b.tokens = min(limit.burst, b.tokens + elapsed * limit.per_minute / 60)
            b.updated = now
            table.move_to_end(key)
        return b

    def _evict(self, now: float) -> None:
        """Drop buckets that have refilled completely (least recently used first, so this stops early)."""
        for table, limit in ((self._clients, self.per_client), (self._rounds, self.per_round)):
            if limit.unlimited:
                table.clear()
                continue
            horizon = limit.refill_seconds
            while table:
                key, b = next(iter(table.items()))
                if now - b.updated < horizon:
                    break
                del table[key]


def limiter_from_settings(settings: Settings, clock: Callable[[], float] = time.monotonic) -> RateLimiter:
    """The enrolment limiter configured by ``ENROL_RATE_PER_CLIENT`` and friends (see :class:`app.config.Settings`)."""
    return RateLimiter(
        per_client=Limit(settings.enrol_rate_per_client, settings.enrol_burst_per_client),
        per_round=Limit(settings.enrol_rate_per_round, settings.enrol_burst_per_round),
        clock=clock,
        max_keys=settings.enrol_rate_max_keys,
    )
