"""The enrolment rate limiter: per-client and per-round token buckets, retry-after, bounded memory."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.ratelimit import Limit, RateLimiter, limiter_from_settings


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def limiter(clock, client=(6, 3), rnd=(60, 20), **kw) -> RateLimiter:
    return RateLimiter(per_client=Limit(*client), per_round=Limit(*rnd), clock=clock, **kw)


def test_burst_then_refused_with_retry_after_then_refilled():
    clock = Clock()
    rl = limiter(clock)  # 6 a minute = one every 10 s, burst 3
    assert [rl.check("1.2.3.4", "r1").allowed for _ in range(3)] == [True] * 3
    d = rl.check("1.2.3.4", "r1")
    assert not d.allowed and d.retry_after == pytest.approx(10.0) and d.retry_after_header == "10"
    clock.t += 4
    d = rl.check("1.2.3.4", "r1")
    assert not d.allowed and d.retry_after == pytest.approx(6.0)
    clock.t += 6
    assert rl.check("1.2.3.4", "r1").allowed
    assert not rl.check("1.2.3.4", "r1").allowed


def test_clients_and_rounds_are_separate_keys():
    clock = Clock()
    rl = limiter(clock)
    for _ in range(3):
        assert rl.check("a", "r1").allowed
    assert not rl.check("a", "r1").allowed
    assert rl.check("a", "r2").allowed  # same address, other round
    assert rl.check("b", "r1").allowed  # other address, same round


def test_round_limit_caps_a_flood_of_distinct_addresses():
    clock = Clock()
    rl = limiter(clock, rnd=(60, 20))
    allowed = sum(rl.check(f"10.0.{i // 256}.{i % 256}", "r1").allowed for i in range(1000))
    assert allowed == 20  # 1,000 fake entries in one instant: 20 get through, 980 refused
    d = rl.check("real-person", "r1")
    assert not d.allowed and d.retry_after == pytest.approx(1.0)
    clock.t += 1
    assert rl.check("real-person", "r1").allowed
    assert rl.check("x", "other-round").allowed  # another round is not drained


def test_refused_requests_take_nothing():
    clock = Clock()
    rl = limiter(clock, client=(60, 5), rnd=(60, 2))
    assert rl.check("a", "r").allowed and rl.check("a", "r").allowed
    for _ in range(10):
        assert not rl.check("a", "r").allowed  # refused by the round: the client's bucket keeps its tokens
    clock.t += 2  # round refills 2
    assert rl.check("a", "r").allowed and rl.check("a", "r").allowed


def test_memory_bounded_under_a_flood_of_addresses():
    clock = Clock()
    rl = limiter(clock, client=(6, 3), rnd=(0, 1), max_keys=1000)
    for i in range(20_000):
        rl.check(f"addr{i}", "r1")
        clock.t += 0.001
    assert len(rl) <= 1000


def test_stale_buckets_evicted():
    clock = Clock()
    rl = limiter(clock)
    for i in range(500):
        rl.check(f"addr{i}", "r1")
    assert len(rl) == 501
    clock.t += 31  # a client bucket (burst 3 at 6 a minute) refills in 30 s, the round's (20 at 60) in 20 s
    rl.check("late", "r2")
    assert len(rl) == 2


def test_eviction_never_resets_a_client_that_is_still_limited():
    clock = Clock()
    rl = limiter(clock, max_keys=10_000)
    for _ in range(3):
        rl.check("attacker", "r1")
    clock.t += 5
    rl.check("other", "r1")  # triggers eviction: attacker's bucket is not full yet, so it stays
    assert not rl.check("attacker", "r1").allowed


def test_unlimited_and_bad_limits():
    clock = Clock()
    rl = limiter(clock, client=(0, 1), rnd=(0, 1))
    assert all(rl.check("a", "r").allowed for _ in range(1000)) and len(rl) == 0
    with pytest.raises(ValueError):
        Limit(-1, 5)
    with pytest.raises(ValueError):
        Limit(10, 0)
    with pytest.raises(ValueError):
        RateLimiter(per_client=Limit(1, 1), per_round=Limit(1, 1), max_keys=0)


def test_configured_from_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("ENROL_RATE_PER_CLIENT", "2")
    monkeypatch.setenv("ENROL_BURST_PER_CLIENT", "2")
    s = Settings(secret_key="x", secret_key_file=tmp_path / "k")
    assert (s.enrol_rate_per_round, s.enrol_burst_per_round, s.image_max_pixels) == (120, 120, 4096 * 4096)
    clock = Clock()
    rl = limiter_from_settings(s, clock)
    assert [rl.check("a", "r").allowed for _ in range(3)] == [True, True, False]
    assert rl.check("a", "r").retry_after == pytest.approx(30.0)
    monkeypatch.setenv("ENROL_RATE_PER_CLIENT", "-1")
    with pytest.raises(ValueError):
        Settings(secret_key="x", secret_key_file=tmp_path / "k")
