"""Back-off for researcher log-in attempts (pure, injectable clock).

Every client address may get the token wrong ``free_failures`` times; after that each further failure doubles the
wait before the next attempt is looked at (``base_delay_s``, 2×, 4× … up to ``max_delay_s``). A correct token resets
the address. All addresses together are also held to ``global_free_failures`` failures per back-off window, so a
guesser spreading over many addresses is slowed too. Memory is bounded (least recently used addresses go first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0

    @property
    def retry_after_header(self) -> str:
        return str(max(1, int(self.retry_after + 0.999)))


@dataclass(slots=True)
class _Record:
    failures: int = 0
    blocked_until: float = 0.0


class LoginGuard:
    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_delay_s: float = 1.0,
        max_delay_s: float = 900.0,
        global_free_failures: int = 100,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.global_free_failures = global_free_failures
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._global = _Record()

    def _delay(self, failures: int, free: int) -> float:
        over = failures - free
        return 0.0 if over <= 0 else min(self.max_delay_s, self.base_delay_s * 2 ** (over - 1))

    def check(self, client: str) -> Verdict:
        """May this address try now? (Looks only; a refused attempt is not counted as a failure.)"""
        now = self._clock()
        with self._lock:
            rec = self._records.get(client)
            wait = max(rec.blocked_until if rec else 0.0, self._global.blocked_until) - now
        return Verdict(True) if wait <= 0 else Verdict(False, wait)

    def failed(self, client: str) -> Verdict:
        """Count a wrong token; returns how long this address must now wait."""
        now = self._clock()
        with self._lock:
            rec = self._records.pop(client, None) or _Record()
            rec.failures += 1
            rec.blocked_until = now + self._delay(rec.failures, self.free_failures)
            self._records[client] = rec
            while len(self._records) > self.max_keys:
                self._records.popitem(last=False)
            g = self._global
            if g.blocked_until and now - g.blocked_until > self.max_delay_s:
                g.failures = 0  # a quiet window forgets the global count
            g.failures += 1
            g.blocked_until = now + self._delay(g.failures, self.global_free_failures)
            wait = max(rec.blocked_until, g.blocked_until) - now
        return Verdict(wait <= 0, max(0.0, wait))

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._records.pop(client, None)
