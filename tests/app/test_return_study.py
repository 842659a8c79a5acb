"""'Stop and return the study': a participant leaves on purpose; the flow sets ``returned``, their held page goes back
to the pool, the pages they sent stay in the export, and their link from then on says what to do on the platform."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select

from app import console_data, crud, export
from app.flow import ParticipantStatus, apply
from app.flow.machine import ReturnStudy, Slot, State, to_utc
from app.models import Assignment, AuditLog, Participant, Round
from tests.app.test_platform_exits import EXITS, _design, _prolific
from tests.factories.pages import parse
from tests.factories.web import walk

S = ParticipantStatus
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_return_is_open_to_every_live_step_and_changes_nothing_afterwards():
    slot = Slot(1, 0, "regular", "p0", "t", ("a", "b"), ("c",), NOW + timedelta(minutes=5))
    for live in (S.CONSENT, S.PROFILE, S.INSTRUCTIONS, S.ACTIVE):
        assert apply(State(live, "open", 0, (slot,)), ReturnStudy()).status == S.RETURNED
    for done in (S.RETURNED, S.COMPLETED, S.TIMED_OUT, S.EXCLUDED, S.INELIGIBLE):
        assert apply(State(done, "open"), ReturnStudy()).status == done


def _person(study, code: str) -> tuple[Participant, list[Assignment]]:
    with study.session() as s:
        person = s.exec(select(Participant).where(Participant.code == code)).one()
        slots = list(s.exec(select(Assignment).where(Assignment.participant_id == person.id)).all())
    return person, slots


def test_participant_returns_the_study_mid_way(make_study, tmp_path):
    study = make_study(_design(tmp_path, "prolific", EXITS), "pr")
    w = walk(study.client, "/s/pr", culture="korea", params=_prolific("LEAVER"), stop_after_pages=1)
    page_html = study.client.get(f"/p/{w.code}").text
    assert f'href="/p/{w.code}/return"' in page_html  # the ranking page offers the way out
    _, before = _person(study, w.code)
    held = [a for a in before if a.submitted_at is None and to_utc(a.leased_until) > to_utc(study.clock())]
    assert len(held) == 1
    with study.session() as s:
        held_coverage = crud.page_coverage(s, round_id="pr", culture="korea", now=study.clock())

    # the confirm step only shows; a GET or a POST without the confirmation changes nothing
    confirm = study.client.get(f"/p/{w.code}/return")
    assert confirm.status_code == 200 and "Yes, stop and return the study" in confirm.text
    form = parse(confirm.text).forms[0]
    assert form.action == f"/p/{w.code}/return"
    assert study.client.post(f"/p/{w.code}/return", follow_redirects=False).status_code == 303
    assert _person(study, w.code)[0].status == "active"

    r = study.client.post(form.action, data=form.hidden, follow_redirects=True)
    assert r.status_code == 200
    assert "You have stopped the study" in r.text and "return the study on Prolific" in r.text
    assert 'id="exit-code"' not in r.text and "http-equiv" not in r.text  # no completion code, no redirect
    person, slots = _person(study, w.code)
    assert person.status == "returned"
    assert not any(a.submitted_at is None and to_utc(a.leased_until) > to_utc(study.clock()) for a in slots)
    with study.session() as s:
        freed = crud.page_coverage(s, round_id="pr", culture="korea", now=study.clock())
        regular = held[0].kind == "regular"  # the held page is back in the pool (coverage counts regular pages)
        assert sum(freed.values()) == sum(held_coverage.values()) - regular
        assert s.exec(select(AuditLog).where(AuditLog.action == "returned")).all()
        rnd = s.get(Round, "pr")
        view = console_data.monitor_view(console_data.load_round_data(s, rnd), study.clock())
        exported = {(r["participant_id"], r["page_id"]) for r in export.response_rows(s, "pr")}
    assert view.summary.participants_by_status["returned"] == 1
    sent = {a.page_id for a in slots if a.submitted_at is not None}
    assert sent and {(person.pseudonym, p) for p in sent} <= exported  # their finished pages stay in the export

    # idempotent: again is harmless; coming back shows the returned message, never their pages
    assert study.client.post(form.action, data=form.hidden, follow_redirects=False).status_code == 303
    again = study.client.get("/s/pr", params=_prolific("LEAVER"), follow_redirects=True)
    assert "You have stopped the study" in again.text and "/page/" not in again.text
    assert study.client.get(f"/p/{w.code}/return", follow_redirects=False).status_code == 303
    assert _person(study, w.code)[0].status == "returned"
    with study.session() as s:
        assert len(s.exec(select(AuditLog).where(AuditLog.action == "returned")).all()) == 1


def test_instructions_offer_the_way_out_and_a_completed_participant_cannot_return(make_study):
    study = make_study("demo.toml", "demo")
    w = walk(study.client, "/s/demo", culture="korea", stop_after_pages=0)
    html = study.client.get(f"/p/{w.code}").text
    assert f'href="/p/{w.code}/return"' in html
    done = walk(study.client, "/s/demo", culture="korea", params=None)
    study.client.post(f"/p/{done.code}/return", data={"confirm": "yes"})
    assert _person(study, done.code)[0].status == "completed"
