"""Recruiting platforms end to end: an MTurk worker submits the HIT, each Prolific exit gives its code and redirect,
a participant whose time ran out keeps the page they were ranking."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from sqlmodel import select

from app import crud, export
from app.flow.machine import to_utc
from app.identity import parse_entry
from app.models import Assignment, Participant
from study_designs.responses import REQUIRED_RESPONSE_COLUMNS
from study_designs.schema import DesignError, load_design
from tests.app.conftest import DESIGNS
from tests.factories.pages import answer, parse, reverse_ranks
from tests.factories.web import walk

EXITS = """
screened_out = { code = "T-SCREEN" }
declined = { code = "T-DECLINE", url = "https://example.org/declined" }
full = { code = "T-FULL" }
timed_out = { code = "T-TIME" }
"""


def _design(tmp_path: Path, platform: str, extra: str = EXITS) -> Path:
    text = (DESIGNS / "demo.toml").read_text()
    text = text.replace('platform = "none"', f'platform = "{platform}"\n{extra}')
    path = tmp_path / f"demo-{platform}.toml"
    path.write_text(text)
    return path


def _prolific(pid: str) -> dict[str, str]:
    return {"PROLIFIC_PID": pid, "STUDY_ID": "S1", "SESSION_ID": "X"}


def _enter(client, round_id: str, params: dict[str, str]):
    client.cookies.clear()
    r = client.get(f"/s/{round_id}", params=params, follow_redirects=True)
    assert r.status_code == 200, r.text
    return r, str(r.url).rsplit("/p/", 1)[-1]


def _refresh_target(html: str) -> str | None:
    m = re.search(r'http-equiv="refresh" content="\d+;url=([^"]+)"', html)
    return m.group(1).replace("&amp;", "&") if m else None


def _status(study, code: str) -> Participant:
    with study.session() as s:
        return s.exec(select(Participant).where(Participant.code == code)).one()


# -- MTurk ------------------------------------------------------------------------------------------------------


def test_mturk_sandbox_worker_submits_the_hit_to_external_submit(make_study, tmp_path):
    study = make_study(_design(tmp_path, "mturk"), "mt")
    params = {
        "workerId": "W1",
        "assignmentId": "A-77",
        "hitId": "H1",
        "turkSubmitTo": "https://workersandbox.mturk.com",
    }
    w = walk(study.client, "/s/mt", culture="korea", params=params)
    forms = parse(w.final_html).forms
    assert len(forms) == 1
    form = forms[0]
    assert form.action == "https://workersandbox.mturk.com/mturk/externalSubmit"
    assert form.hidden["assignmentId"] == "A-77"
    # a local stand-in of MTurk's externalSubmit: the browser posts the form there
    received: list[dict[str, list[str]]] = []

    def mturk(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/mturk/externalSubmit" and request.method == "POST"
        received.append(parse_qs(request.content.decode()))
        return httpx.Response(200, text="HIT submitted")

    with httpx.Client(transport=httpx.MockTransport(mturk)) as browser:
        assert browser.post(form.action, data=form.hidden).text == "HIT submitted"
    assert received == [{"assignmentId": ["A-77"], "completion_code": ["DEMO-DONE"]}]
    r = study.client.get(f"/p/{w.code}")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors https://www.mturk.com https://workersandbox.mturk.com" in csp
    assert "form-action 'self' https://www.mturk.com https://workersandbox.mturk.com" in csp
    assert _status(study, w.code).status == "completed"


def test_live_mturk_host_is_used_as_given_and_other_hosts_never_get_a_form(make_study, tmp_path):
    study = make_study(_design(tmp_path, "mturk"), "mt")
    for host in [
        "https://evil.example/",
        "http://www.mturk.com",
        "https://www.mturk.com.evil.example",
        "https://www.mturk.com/elsewhere",
        "https://www.mturk.com:8443",
        "https://user@www.mturk.com",
        "javascript:alert(1)//www.mturk.com",
    ]:
        assert "turkSubmitTo" not in parse_entry({"workerId": "W", "hitId": "H", "turkSubmitTo": host}).raw
    evil = {"workerId": "W1", "assignmentId": "A1", "hitId": "H1", "turkSubmitTo": "https://evil.example"}
    w = walk(study.client, "/s/mt", culture="korea", params=evil)
    assert "DEMO-DONE" in w.final_html and "externalSubmit" not in w.final_html and "evil" not in w.final_html
    live = {"workerId": "W2", "assignmentId": "A2", "hitId": "H1", "turkSubmitTo": "https://www.mturk.com"}
    form = parse(walk(study.client, "/s/mt", culture="nigeria", params=live).final_html).forms[0]
    assert (form.action, form.hidden["assignmentId"]) == ("https://www.mturk.com/mturk/externalSubmit", "A2")


def test_mturk_preview_shows_instructions_and_an_example_page_and_stores_nothing(make_study, tmp_path):
    study = make_study(_design(tmp_path, "mturk"), "mt")
    r = study.client.get("/s/mt", params={"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "H1"})
    assert r.status_code == 200
    assert "How it works" in r.text and "An example page" in r.text and "Accept the HIT" in r.text
    imgs = parse(r.text).imgs
    design = load_design(DESIGNS / "demo.toml")
    assert len(imgs) == len(design.models) * len(design.criteria)  # the page's images, once per question
    assert all(study.client.get(i["src"]).status_code == 200 for i in imgs)
    assert parse(r.text).forms == []  # nothing to submit
    with study.session() as s:
        assert s.exec(select(Participant)).all() == []


# -- Prolific exits ---------------------------------------------------------------------------------------------


def test_each_prolific_exit_shows_its_code_and_redirects_after_the_state_is_stored(make_study, tmp_path):
    study = make_study(_design(tmp_path, "prolific"), "pr")
    c = study.client
    # completed
    w = walk(c, "/s/pr", culture="korea", params=_prolific("DONE1"))
    assert "DEMO-DONE" in w.final_html
    assert _refresh_target(w.final_html) == "https://app.prolific.com/submissions/complete?cc=DEMO-DONE"
    assert _status(study, w.code).status == "completed"
    # screened out: "Other / none of these"
    r, code = _enter(c, "pr", _prolific("OTHER1"))
    r = c.post(f"/p/{code}/consent", data={"agree": "yes"}, follow_redirects=True)
    r = c.post(f"/p/{code}/profile", data={"culture": "other"}, follow_redirects=True)
    assert "T-SCREEN" in r.text
    assert _refresh_target(r.text) == "https://app.prolific.com/submissions/complete?cc=T-SCREEN"
    assert _status(study, code).status == "ineligible"
    # declined consent: a visible "I do not agree" button, its own code and the design's URL
    r, code = _enter(c, "pr", _prolific("NO1"))
    assert "I do not agree" in r.text
    r = c.post(f"/p/{code}/consent", data={"decline": "yes"}, follow_redirects=True)
    assert "T-DECLINE" in r.text and _refresh_target(r.text) == "https://example.org/declined"
    row = _status(study, code)
    assert (row.status, row.exclusion_reason, row.consented_at) == ("ineligible", "declined consent", None)
    # pressing "I agree" afterwards (an old tab) changes nothing
    c.post(f"/p/{code}/consent", data={"agree": "yes"})
    assert _status(study, code).status == "ineligible"


def test_study_full_exit_when_a_culture_has_nothing_left(make_study, tmp_path):
    study = make_study(_design(tmp_path, "prolific"), "pr")
    for i in range(2):  # demo: 4 korean pages, target 2, 4 pages each
        walk(study.client, "/s/pr", culture="korea", params=_prolific(f"K{i}"))
    r, code = _enter(study.client, "pr", _prolific("LATE"))
    study.client.post(f"/p/{code}/consent", data={"agree": "yes"})
    r = study.client.post(f"/p/{code}/profile", data={"culture": "korea"}, follow_redirects=True)
    assert "T-FULL" in r.text and "nothing left to rank" in r.text
    assert _refresh_target(r.text) == "https://app.prolific.com/submissions/complete?cc=T-FULL"


def test_without_exit_codes_people_are_told_how_to_return_and_are_not_redirected(make_study):
    study = make_study("demo.toml", "demo")
    r, code = _enter(study.client, "demo", _prolific("P1"))
    r = study.client.post(f"/p/{code}/consent", data={"decline": "yes"}, follow_redirects=True)
    assert "return the study on Prolific without a completion code" in r.text
    assert _refresh_target(r.text) is None


# -- timeouts ---------------------------------------------------------------------------------------------------


def test_page_ranked_after_the_time_ran_out_is_kept_and_flagged_then_the_timed_out_code(make_study, tmp_path):
    study = make_study(_design(tmp_path, "prolific"), "pr")
    w = walk(study.client, "/s/pr", culture="korea", params=_prolific("SLOW"), stop_after_pages=1)
    page = parse(w.final_html).forms[0]
    study.clock.advance(minutes=31)  # demo lease: 30 minutes
    with study.session() as s:
        assert crud.reclaim_expired_leases(s, round_id="pr", actor="test", now=study.clock()) != []
    data = answer(page, reverse_ranks)
    r = study.client.post(page.action, data=data, follow_redirects=True)
    assert r.status_code == 200
    assert "Your time ran out" in r.text and "T-TIME" in r.text
    assert _refresh_target(r.text) == "https://app.prolific.com/submissions/complete?cc=T-TIME"
    with study.session() as s:
        person = s.exec(select(Participant).where(Participant.code == w.code)).one()
        slots = s.exec(select(Assignment).where(Assignment.participant_id == person.id)).all()
    assert person.status == "timed_out"
    submitted = sorted((a.position, a.late) for a in slots if a.submitted_at is not None)
    assert submitted == [(0, False), (1, True)]
    late_page = next(a.page_id for a in slots if a.position == 1)
    out = tmp_path / "responses.csv"
    with study.session() as s:
        export.write_responses(s, "pr", out)
    with out.open(newline="") as fh:
        header = next(csv.reader(fh))
        fh.seek(0)
        rows = [r for r in csv.DictReader(fh) if r["participant_id"] == person.pseudonym]
    assert header[-1] == "late" and header[:-1] == list(REQUIRED_RESPONSE_COLUMNS)  # appended after the contract
    flags = {r["page_id"]: r["late"] for r in rows}
    assert late_page in flags  # the page ranked after the time ran out is in the export ...
    assert set(flags.values()) == {"true", "false"}  # ... flagged late, and only that page is
    assert {p for p, f in flags.items() if f == "true"} == {late_page}
    # the pages not yet ranked were not leased to them again: they stay in the pool for others
    assert all(to_utc(a.leased_until) <= to_utc(study.clock()) for a in slots if a.submitted_at is None)


# -- design checks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        'completion_url = "javascript:alert(1)"',
        'completion_url = "http://example.org/done"',
        'completion_url = "data:text/html,hi"',
        'declined = { code = "X", url = "javascript:alert(1)" }',
        'timed_out = { code = "bad code!" }',
    ],
)
def test_designs_with_unsafe_exit_urls_or_bad_codes_are_refused(tmp_path, extra):
    with pytest.raises(DesignError):
        load_design(_design(tmp_path, "prolific", extra))


def test_the_paper_design_ships_one_prolific_code_per_exit():
    from app.flow.exits import all_exits

    exits = {e.kind: e for e in all_exits(load_design(DESIGNS / "scoft-cvpr2024.toml").recruitment)}
    assert set(exits) == {"completed", "screened_out", "declined", "full", "timed_out"}
    codes = [e.code for e in exits.values()]
    assert None not in codes and len(set(codes)) == len(codes)
    assert all(e.redirect_url == f"https://app.prolific.com/submissions/complete?cc={e.code}" for e in exits.values())
