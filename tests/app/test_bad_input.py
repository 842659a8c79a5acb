"""Bad participant input gets a clear 4xx and stores nothing; retries are idempotent; conflicts are 409."""

from __future__ import annotations

import pytest
from sqlalchemy import func
from sqlmodel import select

from app.models import Assignment, AuditLog, Participant, Ranking, RankingSkip
from tests.factories import answer, parse, walk


def counts(study) -> tuple[int, ...]:
    with study.session() as s:
        return (
            s.exec(select(func.count()).select_from(Ranking)).one(),
            s.exec(select(func.count()).select_from(RankingSkip)).one(),
            s.exec(select(func.count()).select_from(Assignment).where(Assignment.submitted_at.is_not(None))).one(),
            s.exec(select(func.count()).select_from(Participant)).one(),
            s.exec(select(func.count()).select_from(AuditLog)).one(),
        )


@pytest.fixture
def on_first_page(make_study):
    study = make_study("demo.toml", "demo")
    w = walk(study.client, "/s/demo", culture="korea", stop_after_pages=0)
    form = parse(w.final_html).forms[0]
    assert form.action == f"/p/{w.code}/page/0"
    return study, w.code, form


def as_served(form) -> dict[str, str]:
    """The form exactly as the page arrived (what a careless bot posts untouched)."""
    data = dict(form.hidden)
    data.update({name: sel["selected"] or "" for name, sel in form.selects.items()})
    return data


def valid(form) -> dict[str, str]:
    """A complete answer: ranks in the shown order, the marked image of an attention check last."""
    return answer(form)


def test_an_untouched_page_is_refused_and_stores_nothing(on_first_page):
    study, _, form = on_first_page
    served = as_served(form)
    ranks = {k: v for k, v in served.items() if k.startswith("rank-")}
    assert ranks and set(ranks.values()) == {""}  # nothing arrives pre-ranked
    assert all(sel["options"][0] == "" for sel in form.selects.values())
    before = counts(study)
    r = post(study, form.action, served)
    assert r.status_code == 400 and 'role="alert"' in r.text
    assert counts(study) == before
    again = parse(r.text).forms[0]
    assert {sel["selected"] or "" for sel in again.selects.values()} == {""}  # and it comes back empty, not filled


def post(study, url, data):
    return study.client.post(url, data=data, follow_redirects=False)


EVERY = "Rank every image for “"
CASES = {
    "duplicate ranks": (lambda d: d | {"rank-description-0": "2", "rank-description-1": "2"}, 400, "each rank"),
    "missing criterion": (lambda d: {k: v for k, v in d.items() if "-stereotypes-" not in k}, 400, EVERY),
    "missing image rank": (lambda d: {k: v for k, v in d.items() if k != "rank-description-2"}, 400, EVERY),
    "unknown image": (lambda d: d | {"rank-description-7": "1"}, 400, "Unknown image"),
    "unknown criterion": (lambda d: d | {"rank-beauty-0": "1"}, 400, "Unknown question"),
    "rank out of range": (lambda d: d | {"rank-description-0": "9"}, 400, "from 1 to 3"),
    "rank not a number": (lambda d: d | {"rank-description-0": "x"}, 400, "Choose a rank from 1 to 3"),
    "skip not offered": (lambda d: d | {"skip-description": "1"}, 400, "cannot be skipped"),
    "stale token": (lambda d: d | {"token": "not-the-token"}, 409, "stale token"),
    "no token": (lambda d: {k: v for k, v in d.items() if k != "token"}, 400, "token"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_submission_is_rejected_and_stores_nothing(on_first_page, case):
    study, code, form = on_first_page
    change, status, message = CASES[case]
    before = counts(study)
    r = post(study, form.action, change(valid(form)))
    assert r.status_code == status, r.text
    assert message in r.text
    assert counts(study) == before
    assert post(study, form.action, valid(form)).status_code == 303  # the page can still be answered


def test_duplicate_ranks_rerender_the_page_with_the_choices_kept(on_first_page):
    study, _, form = on_first_page
    data = valid(form) | {"rank-description-0": "2"}
    r = post(study, form.action, data)
    assert r.status_code == 400 and 'role="alert"' in r.text
    again = parse(r.text).forms[0]
    assert again.selects["rank-description-0"]["selected"] == "2"
    assert again.hidden["token"] == form.hidden["token"]


def test_wrong_page_unknown_page_and_forged_code(on_first_page):
    study, code, form = on_first_page
    with study.session() as s:
        later = s.exec(select(Assignment).where(Assignment.position == 1)).one()
    before = counts(study)
    data = valid(form) | {"token": later.token}
    r = post(study, f"/p/{code}/page/1", data)
    assert r.status_code == 409 and "not your current page" in r.text
    assert post(study, f"/p/{code}/page/42", valid(form)).status_code == 404
    forged = "A" * len(code)
    r = post(study, f"/p/{forged}/page/0", valid(form))
    assert r.status_code == 404 and "Unknown participant" in r.text
    assert study.client.get(f"/p/{forged}").status_code == 404
    assert post(study, f"/p/{forged}/consent", {"agree": "yes"}).status_code == 404
    assert counts(study) == before


def test_oversized_body_is_413(on_first_page):
    study, _, form = on_first_page
    before = counts(study)
    data = valid(form) | {"padding": "x" * 200_000}
    r = post(study, form.action, data)
    assert r.status_code == 413
    assert counts(study) == before


def test_retry_is_idempotent_and_conflicting_resubmission_is_409(on_first_page):
    study, code, form = on_first_page
    data = valid(form)
    assert post(study, form.action, data).status_code == 303
    after_first = counts(study)
    assert post(study, form.action, data).status_code == 303  # the same answers again (a network retry)
    assert counts(study) == after_first
    changed = data | {"rank-description-0": "2", "rank-description-1": "1"}
    r = post(study, form.action, changed)  # the back button, then different answers
    assert r.status_code == 409 and "already submitted" in r.text
    assert counts(study) == after_first
    with study.session() as s:
        ranks = s.exec(select(Ranking.rank).where(Ranking.criterion == "description").order_by(Ranking.id)).all()
    assert ranks == [1, 2, 3]
    # after going back, reloading shows the current (next) page, not the old one
    page = parse(study.client.get(f"/p/{code}").text).forms[0]
    assert page.action.endswith("/page/1")


def test_steps_reject_bad_choices_and_reload_shows_the_right_step(make_study):
    study = make_study("demo.toml", "demo")
    r = study.client.get("/s/demo", follow_redirects=True)
    code = r.url.path.split("/")[-1]
    before = counts(study)
    r = post(study, f"/p/{code}/consent", {})
    assert r.status_code == 400 and "agree" in r.text
    assert counts(study) == before
    assert post(study, f"/p/{code}/consent", {"agree": "yes"}).status_code == 303
    assert "/profile" in parse(study.client.get(f"/p/{code}").text).forms[0].action
    assert post(study, f"/p/{code}/consent", {"agree": "yes"}).status_code == 303  # back + resubmit: harmless
    r = post(study, f"/p/{code}/profile", {"culture": "atlantis"})
    assert r.status_code == 400
    assert post(study, f"/p/{code}/profile", {"culture": "korea"}).status_code == 303
    with study.session() as s:
        n_slots = s.exec(select(func.count()).select_from(Assignment)).one()
    assert post(study, f"/p/{code}/profile", {"culture": "nigeria"}).status_code == 303  # stale form: ignored
    with study.session() as s:
        person = s.exec(select(Participant)).one()
        assert person.culture == "korea"
        assert s.exec(select(func.count()).select_from(Assignment)).one() == n_slots
    assert "/instructions" in parse(study.client.get(f"/p/{code}").text).forms[0].action


@pytest.mark.parametrize(
    "query,message",
    [
        ({"PROLIFIC_PID": "{{%PROLIFIC_PID%}}"}, "PROLIFIC_PID"),
        ({"PROLIFIC_PID": "x" * 65}, "PROLIFIC_PID"),
        ({"assignmentId": "A1"}, "workerId"),
    ],
)
def test_bad_platform_ids_are_400(make_study, query, message):
    study = make_study("demo.toml", "demo")
    r = study.client.get("/s/demo", params=query, follow_redirects=False)
    assert r.status_code == 400 and message in r.text
    assert counts(study)[3] == 0


def test_unknown_round_is_404_and_mturk_preview_enrols_nobody(make_study):
    study = make_study("demo.toml", "demo")
    assert study.client.get("/s/nope").status_code == 404
    r = study.client.get("/s/demo", params={"assignmentId": "ASSIGNMENT_NOT_AVAILABLE", "hitId": "H"})
    assert r.status_code == 200 and "Accept the HIT" in r.text and "How it works" in r.text
    assert counts(study)[3] == 0


def test_a_refused_page_comes_back_with_the_same_progress_as_when_it_was_shown(on_first_page):
    study, code, form = on_first_page
    assert post(study, form.action, valid(form)).status_code == 303
    shown = study.client.get(f"/p/{code}")
    second = parse(shown.text).forms[0]
    assert second.action == f"/p/{code}/page/1"
    refused = post(study, second.action, as_served(second))
    assert refused.status_code == 400

    def heading(html: str) -> str:
        return html.split('id="page-heading">', 1)[1].split("<", 1)[0]

    def bar(html: str) -> str:
        return html.split('<progress class="progress-bar"', 1)[1].split(">", 1)[0]

    assert heading(refused.text) == heading(shown.text) and heading(shown.text).startswith("Page 2 of ")
    assert bar(refused.text) == bar(shown.text) and 'value="1"' in bar(shown.text)
