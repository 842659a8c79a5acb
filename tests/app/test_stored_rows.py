"""What a submission stores, read back from the tables and compared with what the browser sent, on SQLite and on
PostgreSQL (where rankings, skips, the slot and the participant are written by one statement).

A reviewer recomputing the statistics reads these rows: every rank sent is stored once against the image shown at
that place, a skipped question stores a skip and no ranks, and the slot and participant carry the submission's time,
digest and status.
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from app.models import Assignment, Participant, Ranking, RankingSkip
from tests.factories import walk
from tests.factories.postgres import pg_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def study(request, make_study):
    if request.param == "sqlite":
        yield make_study()
        return
    with pg_schema("stored_") as url:
        yield make_study(database_url=url)


def _stored(study, code: str):
    with study.session() as s:
        person = s.exec(select(Participant).where(Participant.code == code)).one()
        slots = s.exec(select(Assignment).where(Assignment.participant_id == person.id)).all()
        ids = [a.id for a in slots]
        rankings = s.exec(select(Ranking).where(Ranking.slot_id.in_(ids))).all()  # type: ignore[union-attr]
        skips = s.exec(select(RankingSkip).where(RankingSkip.slot_id.in_(ids))).all()  # type: ignore[union-attr]
    return person, {a.id: a for a in slots}, rankings, skips


def test_every_sent_rank_and_skip_is_stored_once_against_the_image_shown(study):
    p = walk(
        study.client,
        "/s/r1",
        culture="korea",
        skip=lambda pos, crit: pos == 1 and crit == "offensiveness",
        stop_after_pages=0,
    )
    p.finish(study.clock)
    person, slots, rankings, skips = _stored(study, p.code)
    assert person.status == "completed" and person.completed_at == study.clock()
    assert person.language == "en" and person.failed_checks == 0
    assert all(a.submitted_at is not None and a.payload_sha256 and not a.late for a in slots.values())
    assert all(a.seconds_on_page and a.seconds_on_page > 0 for a in slots.values())

    by_position = {a.position: a for a in slots.values()}
    stored = {(by_position_of(slots, r.slot_id), r.criterion, r.image_id): r.rank for r in rankings}
    sent = {(pos, crit, by_position[pos].image_order[idx]): rank for (pos, crit, idx), rank in p.given.items()}
    assert stored == sent and len(rankings) == len(sent)  # nothing lost, nothing doubled, nothing misplaced
    for r in rankings:
        shown_at = slots[r.slot_id].image_order.index(r.image_id)
        assert r.initial_position == shown_at and r.moved == (r.rank != shown_at + 1)
    assert [(by_position_of(slots, k.slot_id), k.criterion) for k in skips] == [(1, "offensiveness")]
    assert not any(by_position_of(slots, r.slot_id) == 1 and r.criterion == "offensiveness" for r in rankings)


def test_a_failed_attention_check_is_stored_on_the_slot_and_counted_on_the_participant(study):
    p = walk(study.client, "/s/r1", culture="korea", choose=marked_first, stop_after_pages=0)
    p.finish(study.clock)
    person, slots, rankings, _ = _stored(study, p.code)
    checks = [a for a in slots.values() if a.kind == "attention"]
    assert checks and all(a.attention_passed is False for a in checks)
    # the count is what excludes them (``exclude_after_failed_checks = 1``) from coverage and the analysis
    assert person.failed_checks == len(checks) == 1 and person.status == "completed"
    assert {r.slot_id for r in rankings} == {a.id for a in slots.values() if a.submitted_at is not None}


def marked_first(criterion: str, n: int, marked: int | None, rng: object) -> list[int]:
    """Ranks that put the image marked "Rank me last" first: a check answered against its instruction, always."""
    order = list(range(n)) if marked is None else [marked, *(i for i in range(n) if i != marked)]
    ranks = [0] * n
    for rank, index in enumerate(order, start=1):
        ranks[index] = rank
    return ranks


def by_position_of(slots: dict[int, Assignment], slot_id: int) -> int:
    return slots[slot_id].position
