"""Properties of the pure assignment: balanced coverage, balanced positions, determinism, checks and repeats."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from app.assignment import PlanRequest, latin_row, plan, spread_positions

MODELS = ("m0", "m1", "m2", "m3", "m4")


def request(i: int, pages, cov, *, target, per, models, latin_base, **kw) -> PlanRequest:
    return PlanRequest(
        seed=f"study:{i}",
        culture_pages=tuple(pages),
        coverage=cov,
        target=target,
        pages_per_participant=per,
        models=tuple(models),
        criteria=("a", "b", "c"),
        latin_base=latin_base,
        participant_index=i,
        **kw,
    )


def simulate(n_pages: int, per: int, target: int, n_models: int, n_participants: int):
    """Enrol participants one after another; yield the coverage after each enrolment and all regular slots."""
    pages = [f"p{j}" for j in range(n_pages)]
    models = MODELS[:n_models]
    cov = dict.fromkeys(pages, 0)
    regular = []
    for i in range(n_participants):
        slots = plan(request(i, pages, cov, target=target, per=per, models=models, latin_base=len(regular)))
        mine = [s for s in slots if s.kind == "regular"]
        assert len({s.page_id for s in mine}) == len(mine), "a participant never gets a page twice"
        for s in mine:
            assert cov[s.page_id] < target, "never hand out a page that reached its target"
            cov[s.page_id] += 1
        regular += mine
        yield dict(cov), regular


@settings(max_examples=60, deadline=None)
@given(
    n_pages=st.integers(1, 30),
    per=st.integers(1, 12),
    target=st.integers(1, 8),
    n_models=st.integers(2, 5),
    n_participants=st.integers(1, 40),
)
def test_coverage_balanced_within_one_at_every_moment(n_pages, per, target, n_models, n_participants):
    for cov, _ in simulate(n_pages, per, target, n_models, n_participants):
        assert max(cov.values()) - min(cov.values()) <= 1
        assert max(cov.values()) <= target


@settings(max_examples=60, deadline=None)
@given(
    n_pages=st.integers(1, 30),
    per=st.integers(1, 12),
    n_models=st.integers(2, 5),
    n_participants=st.integers(1, 40),
)
def test_each_model_equally_often_in_each_position(n_pages, per, n_models, n_participants):
    models = MODELS[:n_models]
    for _, regular in simulate(n_pages, per, 1000, n_models, n_participants):
        counts = Counter((m, p) for s in regular for p, m in enumerate(s.model_order))
        values = [counts[(m, p)] for m in models for p in range(n_models)]
        assert max(values) - min(values) <= 1
        for s in regular:
            assert sorted(s.model_order) == sorted(models)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), checks=st.integers(0, 3), repeats=st.integers(0, 2))
def test_same_seed_same_assignment(seed, checks, repeats):
    pages = [f"p{j}" for j in range(12)]
    cov = {p: j % 3 for j, p in enumerate(pages)}

    def make(s):
        return plan(
            request(
                s,
                pages,
                cov,
                target=5,
                per=6,
                models=MODELS[:4],
                latin_base=7,
                attention_checks=checks,
                repeat_pages=repeats,
                position_balance="shuffle",
            )
        )

    assert make(seed) == make(seed)


def test_different_participants_get_different_tie_breaks():
    pages = [f"p{j}" for j in range(40)]
    cov = dict.fromkeys(pages, 0)
    picks = {
        tuple(s.page_id for s in plan(request(i, pages, cov, target=3, per=5, models=MODELS[:3], latin_base=0)))
        for i in range(10)
    }
    assert len(picks) > 1


def test_least_covered_pages_first_and_full_pages_skipped():
    pages = ["a", "b", "c", "d"]
    cov = {"a": 2, "b": 0, "c": 1, "d": 3}
    slots = plan(request(0, pages, cov, target=3, per=2, models=MODELS[:3], latin_base=0))
    assert [s.page_id for s in slots] == ["b", "c"]
    assert plan(request(0, pages, dict.fromkeys(pages, 3), target=3, per=2, models=MODELS[:3], latin_base=0)) == []


def test_attention_checks_and_repeats_are_placed_inside_the_sequence():
    pages = [f"p{j}" for j in range(10)]
    slots = plan(
        request(
            3,
            pages,
            dict.fromkeys(pages, 0),
            target=5,
            per=6,
            models=MODELS[:4],
            latin_base=2,
            attention_checks=2,
            repeat_pages=1,
            criteria_mode="counterbalanced",
        )
    )
    kinds = [s.kind for s in slots]
    assert kinds.count("regular") == 6 and kinds.count("attention") == 2 and kinds.count("repeat") == 1
    assert kinds[0] == "regular" and kinds[-1] == "repeat"
    assert [s.position for s in slots] == list(range(len(slots)))
    for s in slots:
        if s.kind == "attention":
            assert s.page_id not in {r.page_id for r in slots if r.kind == "regular"}  # 10 pages: room to avoid them
            assert s.check_model in s.model_order
            assert s.criteria_order == (s.check_criterion,)
    repeat = slots[-1]
    first = next(s for s in slots if s.kind == "regular" and s.page_id == repeat.page_id)
    assert repeat.model_order != first.model_order
    regular = [s for s in slots if s.kind == "regular"]
    assert {s.criteria_order for s in regular} == {("a", "b", "c")}  # participant 3 of 3 criteria: no rotation


def test_counterbalanced_criteria_rotate_over_participants():
    pages = ["p0", "p1"]
    orders = {
        plan(request(i, pages, {}, target=9, per=1, models=MODELS[:2], latin_base=0, criteria_mode="counterbalanced"))[
            0
        ].criteria_order
        for i in range(3)
    }
    assert orders == {("a", "b", "c"), ("b", "c", "a"), ("c", "a", "b")}


def test_latin_square_rows_are_permutations_and_columns_too():
    rows = [latin_row(MODELS, r) for r in range(len(MODELS))]
    for p in range(len(MODELS)):
        assert sorted(r[p] for r in rows) == sorted(MODELS)
    assert spread_positions(6, 2) == [2, 4]
