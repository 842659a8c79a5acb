"""Balanced yet unpredictable image orders: what an adversary pooling many participants' page orders can learn.

Statistic: over consecutive regular slots of one culture (the pages one participant sees one after another, and
the last page of one participant with the first of the next), the rate at which "the model at position p on page
n equals the model at position p-d on page n+1" for a fixed offset d. Exact ±1 balance at every enrolment forces
two pages of the same block of K slots never to show the same model in the same position, so for such pairs
chance is 0 at d = 0 and 1/(K-1) at every d ≠ 0 (the one model excluded at p-d is spread evenly); pages in
different blocks are independent (chance 1/K). A two-sided binomial test must not reject chance (p > 0.001, one
position per pair so trials are independent), while the same test rejects the old cyclic design (p < 1e-12).
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from math import factorial

import pytest
from scipy.stats import binomtest

from app.assignment import PlanRequest, balanced_orders, block_rows, culture_order_seed, latin_row, plan

MODELS = ("ldm", "m", "mp", "mpc", "base")


def enrol(n_participants: int, per: int, models=MODELS, order_seed="s3cret:korea", n_pages=400):
    """Enrol participants one after another in one culture; all regular slots in enrolment order."""
    pages = tuple(f"p{j:03d}" for j in range(n_pages))
    cov = dict.fromkeys(pages, 0)
    slots = []
    for i in range(n_participants):
        req = PlanRequest(
            seed=f"study:r1:pseud{i}",
            culture_pages=pages,
            coverage=cov,
            target=10_000,
            pages_per_participant=per,
            models=models,
            criteria=("a",),
            latin_base=len(slots),
            participant_index=i,
            order_seed=order_seed,
        )
        mine = [s for s in plan(req) if s.kind == "regular"]
        for s in mine:
            cov[s.page_id] += 1
        slots += [(i, s) for s in mine]
    return slots


@functools.cache
def pooled_orders() -> tuple[tuple[str, ...], ...]:
    """What 800 participants with 8 pages each saw, pooled in enrolment order."""
    return tuple(s.model_order for _, s in enrol(800, 8))


def offset_trials(orders, k: int, d: int, *, same_block: bool, rng: random.Random):
    """(matches, trials) of 'model at p on slot n == model at p-d on slot n+1', one random p per pair."""
    hits = trials = 0
    for n in range(len(orders) - 1):
        if ((n // k) == ((n + 1) // k)) != same_block:
            continue
        ps = [p for p in range(k) if 0 <= p - d < k]
        p = rng.choice(ps)
        hits += orders[n][p] == orders[n + 1][p - d]
        trials += 1
    return hits, trials


def test_each_model_equally_often_in_each_position_at_every_enrolment():
    counts: Counter = Counter()
    slots = enrol(300, 7)
    by_person: dict[int, list] = {}
    for i, s in slots:
        by_person.setdefault(i, []).append(s)
    for i in sorted(by_person):
        for s in by_person[i]:
            assert sorted(s.model_order) == sorted(MODELS)
            counts.update((m, p) for p, m in enumerate(s.model_order))
        values = [counts[(m, p)] for m in MODELS for p in range(len(MODELS))]
        assert max(values) - min(values) <= 1, f"after participant {i}"


def test_orders_reproducible_from_the_order_seed_and_differ_between_seeds():
    a = [s.model_order for _, s in enrol(30, 6)]
    assert a == [s.model_order for _, s in enrol(30, 6)]
    b = [s.model_order for _, s in enrol(30, 6, order_seed="other:korea")]
    assert a != b
    assert sum(x == y for x, y in zip(a, b, strict=True)) < len(a) / 10


def test_no_fixed_row_sequence_every_block_a_different_square():
    squares = {tuple(block_rows(MODELS, "s", b, 5)) for b in range(200)}
    assert len(squares) > 190
    for sq in squares:
        for p in range(5):
            assert sorted(r[p] for r in sq) == sorted(MODELS)  # each block is a Latin square


@pytest.mark.parametrize("d", [1, 2, 3, 4, -1, -2])
def test_fixed_offset_between_consecutive_pages_is_at_chance(d):
    k = len(MODELS)
    orders = pooled_orders()
    rng = random.Random(d)
    hits, n = offset_trials(orders, k, d, same_block=True, rng=rng)
    assert n > 3000
    assert binomtest(hits, n, 1 / (k - 1)).pvalue > 0.001, (hits, n)
    hits, n = offset_trials(orders, k, d, same_block=False, rng=rng)
    assert n > 800
    assert binomtest(hits, n, 1 / k).pvalue > 0.001, (hits, n)


def test_same_position_only_excluded_within_a_block_chance_across_blocks():
    k = len(MODELS)
    orders = pooled_orders()
    rng = random.Random(0)
    assert offset_trials(orders, k, 0, same_block=True, rng=rng)[0] == 0  # forced by exact balance
    hits, n = offset_trials(orders, k, 0, same_block=False, rng=rng)
    assert binomtest(hits, n, 1 / k).pvalue > 0.001, (hits, n)


def test_the_statistic_has_power_against_the_old_cyclic_design():
    k = len(MODELS)
    cyclic = [latin_row(MODELS, n % k) for n in range(6400)]
    hits, n = offset_trials(cyclic, k, 1, same_block=True, rng=random.Random(1))
    assert hits == n  # the model at p on page n is at p-1 on page n+1, every time
    assert binomtest(hits, n, 1 / (k - 1)).pvalue < 1e-12


def test_first_participant_does_not_get_the_design_order():
    models = MODELS[:4]
    firsts = [balanced_orders(models, f"round{r}", 0, 1)[0] for r in range(2400)]
    design_order = sum(o == models for o in firsts)
    assert binomtest(design_order, len(firsts), 1 / factorial(4)).pvalue > 0.001, design_order
    lead = sum(o[0] == models[0] for o in firsts)
    assert binomtest(lead, len(firsts), 1 / 4).pvalue > 0.001, lead
    assert len(set(firsts)) == factorial(4)


def test_first_slot_model_positions_uniform_over_blocks():
    k = len(MODELS)
    counts = Counter(o.index("mpc") for b in range(1500) for o in [block_rows(MODELS, "x", b, 1)[0]])
    for p in range(k):
        assert binomtest(counts[p], 1500, 1 / k).pvalue > 0.001, counts


def test_order_seed_is_keyed():
    a = culture_order_seed("k1", 7, "r1", "korea")
    assert a == culture_order_seed("k1", 7, "r1", "korea")
    assert len({a, culture_order_seed("k2", 7, "r1", "korea"), culture_order_seed("k1", 7, "r1", "india")}) == 3


def test_repeat_pages_show_every_model_in_another_position():
    pages = tuple(f"p{j}" for j in range(20))
    for i in range(50):
        slots = plan(
            PlanRequest(
                seed=f"s{i}",
                culture_pages=pages,
                coverage={},
                target=5,
                pages_per_participant=6,
                models=MODELS,
                criteria=("a",),
                latin_base=i * 6,
                participant_index=i,
                repeat_pages=2,
                order_seed="o",
            )
        )
        for r in (s for s in slots if s.kind == "repeat"):
            first = next(s for s in slots if s.kind == "regular" and s.page_id == r.page_id)
            assert sorted(r.model_order) == sorted(first.model_order)
            assert all(a != b for a, b in zip(r.model_order, first.model_order, strict=True))


def test_larger_model_sets_stay_balanced():
    models = tuple(f"m{j}" for j in range(9))
    orders = balanced_orders(models, "big", 0, 9 * 20 + 4)
    counts = Counter((m, p) for o in orders for p, m in enumerate(o))
    values = [counts[(m, p)] for m in models for p in range(9)]
    assert max(values) - min(values) <= 1
