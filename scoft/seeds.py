"""Seeds derived from integers, stable across runs, machines and processes."""

from __future__ import annotations

import hashlib


def mix_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (stable across runs, machines and processes)."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
