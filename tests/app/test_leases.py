"""Leases: abandoned pages return to the pool after lease_minutes, and a returning participant is moved off a page
someone else now holds when another page has room (otherwise keeps it, so they can still finish)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlmodel import select

from app.models import Assignment, Participant
from tests.factories import parse, walk

DEMO = Path(__file__).resolve().parents[2] / "study_designs" / "demo.toml"


def small_design(tmp_path: Path, per: int) -> Path:
    toml = DEMO.read_text()
    toml = toml.replace("pages_per_participant = 4", f"pages_per_participant = {per}")
    toml = toml.replace("target_rankings_per_page = 2", "target_rankings_per_page = 1")
    toml = toml.replace("attention_checks = 1", "attention_checks = 0")
    path = tmp_path / "small.toml"
    path.write_text(toml)
    return path


def pages_of(study, code: str) -> set[str]:
    with study.session() as s:
        person = s.exec(select(Participant).where(Participant.code == code)).one()
        return {a.page_id for a in s.exec(select(Assignment).where(Assignment.participant_id == person.id))}


def submitted_pages(study) -> Counter:
    with study.session() as s:
        done = select(Assignment.page_id).where(
            Assignment.round_id == study.round_id, Assignment.submitted_at.is_not(None)
        )
        return Counter(s.exec(done).all())


def test_returning_participant_is_moved_off_a_reassigned_page(make_study, tmp_path):
    study = make_study(small_design(tmp_path, per=1), "swap")
    a = walk(study.client, "/s/swap", culture="korea", stop_after_pages=0)
    old_token = parse(a.final_html).forms[0].hidden["token"]
    study.clock.advance(minutes=31)  # a's lease runs out
    c = walk(study.client, "/s/swap", culture="korea", stop_after_pages=0)
    with study.session() as s:  # make the newcomer hold exactly a's page (the draw among free pages is seeded)
        slot_a = s.exec(select(Assignment).join(Participant).where(Participant.code == a.code)).one()
        slot_c = s.exec(select(Assignment).join(Participant).where(Participant.code == c.code)).one()
        slot_c.page_id, slot_c.image_order = slot_a.page_id, list(slot_a.image_order)
        s.add(slot_c)
        s.commit()
        n_images = len(slot_a.image_order)
    back = study.client.get(f"/p/{a.code}")
    form = parse(back.text).forms[0]
    assert back.status_code == 200 and form.action.endswith("/page/0")
    assert form.hidden["token"] != old_token  # a fresh form for the new page
    assert post_stale(study, a.code, old_token) == 409
    assert not pages_of(study, a.code) & pages_of(study, c.code)
    with study.session() as s:
        moved = s.exec(select(Assignment).join(Participant).where(Participant.code == a.code)).one()
        assert moved.page_id != slot_c.page_id and len(moved.image_order) == n_images
    assert walk(study.client, f"/p/{a.code}", culture="korea").pages == 1
    assert walk(study.client, f"/p/{c.code}", culture="korea").pages == 1
    assert set(submitted_pages(study).values()) == {1}


def post_stale(study, code: str, token: str) -> int:
    data = {"token": token} | {
        f"rank-{c}-{i}": str(i + 1)
        for c in ("description", "cultural_relevance", "stereotypes", "offensiveness")
        for i in range(3)
    }
    return study.client.post(f"/p/{code}/page/0", data=data, follow_redirects=False).status_code


def test_pages_are_held_one_at_a_time_and_abandoned_ones_go_to_newcomers(make_study, tmp_path):
    study = make_study(small_design(tmp_path, per=2), "leases")  # korea: 4 pages, target 1, 2 pages each
    holders = [walk(study.client, "/s/leases", culture="korea", stop_after_pages=0) for _ in range(4)]
    current = [held_page(study, h.code) for h in holders]
    assert len(set(current)) == 4  # each holds the page they are on, and only that one
    late = walk(study.client, "/s/leases", culture="korea")
    # every page is leased, none answered: told to come back, and not recorded as ineligible for good
    assert late.pages == 0 and "come back" in late.final_html
    with study.session() as s:
        assert s.exec(select(Participant.status).where(Participant.code == late.code)).one() == "profile"

    study.clock.advance(minutes=31)  # every lease ran out; one holder comes back and finishes, the others left
    assert walk(study.client, f"/p/{holders[1].code}", culture="korea").pages == 2
    assert walk(study.client, f"/p/{late.code}", culture="korea").pages == 2  # the one told to come back gets in
    counts = submitted_pages(study)
    assert sum(counts.values()) == 4 and set(counts.values()) == {1}  # every page exactly at target
    assert walk(study.client, "/s/leases", culture="korea").pages == 0  # and nothing beyond them

    # a holder returns when every page is answered: the page they had seen is kept (they can finish it), the
    # page they never saw is dropped, and they complete
    back = walk(study.client, f"/p/{holders[0].code}", culture="korea")
    assert back.pages == 1 and "completion" in back.final_html.lower()
    assert sum(submitted_pages(study).values()) == 5


def held_page(study, code: str) -> str:
    with study.session() as s:
        person = s.exec(select(Participant).where(Participant.code == code)).one()
        live = s.exec(
            select(Assignment.page_id).where(
                Assignment.participant_id == person.id, Assignment.leased_until > study.clock()
            )
        ).all()
        assert len(live) == 1, live
        return live[0]


def test_sending_a_page_moves_the_next_one_off_a_page_others_filled_meanwhile(make_study, tmp_path):
    """The next page is leased when a page is sent; when others filled it in the meantime the participant gets a page
    with room instead (never a page beyond its target), and then finishes normally."""
    study = make_study(small_design(tmp_path, per=2), "next")
    a = walk(study.client, "/s/next", culture="korea", stop_after_pages=0)  # holds their first page, not the second
    c = walk(study.client, "/s/next", culture="korea", stop_after_pages=0)
    with study.session() as s:  # the newcomer's first page becomes a's second page, which c then fills
        a_slots = s.exec(
            select(Assignment).join(Participant).where(Participant.code == a.code).order_by(Assignment.position)
        ).all()
        c_first = s.exec(
            select(Assignment).join(Participant).where(Participant.code == c.code, Assignment.position == 0)
        ).one()
        a_next = a_slots[1]
        assert a_next.leased_until.replace(tzinfo=None) <= study.clock().replace(tzinfo=None)  # not held yet
        c_first.page_id, c_first.image_order = a_next.page_id, list(a_next.image_order)
        s.add(c_first)
        s.commit()
        filled = a_next.page_id
    assert walk(study.client, f"/p/{c.code}", culture="korea", stop_after_pages=1).pages == 1
    assert submitted_pages(study)[filled] == 1  # at target (1)
    done = walk(study.client, f"/p/{a.code}", culture="korea")
    assert done.pages == 2
    assert filled not in pages_of(study, a.code)  # moved off the filled page when their first page was sent
    walk(study.client, f"/p/{c.code}", culture="korea")
    assert set(submitted_pages(study).values()) == {1}  # no page beyond its target
