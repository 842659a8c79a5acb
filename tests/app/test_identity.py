"""Platform identity: who counts as the same participant, and which ids are refused."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from app.identity import EntryError, PlatformEntry, identity_key, parse_entry
from app.models import Participant

OK = {"PROLIFIC_PID": "5f1a2b3c4d5e6f7a8b9c0d1e", "STUDY_ID": "study01", "SESSION_ID": "sess01"}


def test_prolific_identity_is_pid_and_study():
    e = parse_entry(OK)
    assert e.platform == "prolific" and e.identity == (OK["PROLIFIC_PID"], "study01")
    assert e.raw == OK  # SESSION_ID recorded
    assert identity_key(e) == identity_key(parse_entry({**OK, "SESSION_ID": "another"}))
    assert identity_key(e) != identity_key(parse_entry({**OK, "STUDY_ID": "study02"}))
    assert identity_key(parse_entry({k: v for k, v in OK.items() if k != "SESSION_ID"})) == identity_key(e)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({**OK, "PROLIFIC_PID": OK["PROLIFIC_PID"] + "\n"}, "PROLIFIC_PID must be"),  # %0A
        ({**OK, "STUDY_ID": "study01\n"}, "STUDY_ID must be"),
        ({**OK, "SESSION_ID": "s\r\n"}, "SESSION_ID must be"),
        ({**OK, "PROLIFIC_PID": " " + OK["PROLIFIC_PID"]}, "PROLIFIC_PID must be"),
        ({**OK, "PROLIFIC_PID": "pïd"}, "PROLIFIC_PID must be"),
        ({**OK, "PROLIFIC_PID": "١٢٣"}, "PROLIFIC_PID must be"),  # non-ASCII digits
        ({**OK, "PROLIFIC_PID": "ＡＢＣ"}, "PROLIFIC_PID must be"),  # full-width letters
        ({**OK, "PROLIFIC_PID": "x" * 65}, "PROLIFIC_PID must be"),
        ({**OK, "PROLIFIC_PID": ""}, "PROLIFIC_PID must be"),
        ({**OK, "PROLIFIC_PID": "a\x00b"}, "PROLIFIC_PID must be"),
        ({**OK, "STUDY_ID": "{{%STUDY_ID%}}"}, "STUDY_ID must be"),
        ({"PROLIFIC_PID": "abc", "SESSION_ID": "s"}, "STUDY_ID is missing"),
        ({"workerId": "A1B2C3"}, "assignmentId or hitId is missing"),
        ({"workerId": "A1B2C3", "turkSubmitTo": "x"}, "assignmentId or hitId is missing"),
        ({"assignmentId": "A1", "hitId": "H1"}, "workerId is missing"),
        ({"hitId": "H1"}, "workerId is missing"),
        ({"workerId": "A1\n", "hitId": "H1"}, "workerId must be"),
        ({"workerId": "A1", "hitId": "H" * 65}, "hitId must be"),
    ],
)
def test_bad_entries_refused(params, message):
    with pytest.raises(EntryError, match=message):
        parse_entry(params)


def test_sixty_four_ascii_characters_accepted():
    e = parse_entry({"PROLIFIC_PID": "a" * 64, "STUDY_ID": "B-_9" * 16})
    assert e.participant_id == "a" * 64


def test_mturk_identity_and_preview():
    full = parse_entry({"workerId": "W1", "assignmentId": "A1", "hitId": "H1"})
    assert full.identity == ("W1", "H1") and full.raw["assignmentId"] == "A1"
    again = parse_entry({"workerId": "W1", "assignmentId": "A2", "hitId": "H1"})
    assert identity_key(full) == identity_key(again)
    assert identity_key(full) != identity_key(parse_entry({"workerId": "W1", "assignmentId": "A1", "hitId": "H2"}))
    assert parse_entry({"workerId": "W1", "assignmentId": "A1"}).identity == ("W1", "A1")
    preview = parse_entry({"assignmentId": "ASSIGNMENT_NOT_AVAILABLE", "hitId": "H1"})
    assert preview.preview and preview.participant_id is None
    with pytest.raises(EntryError):
        parse_entry({"assignmentId": "ASSIGNMENT_NOT_AVAILABLE\n", "hitId": "H1"})


def test_no_platform_and_hand_built_entries():
    assert parse_entry({}).platform == "none" and parse_entry({"x": "1"}).participant_id is None
    assert identity_key(PlatformEntry("prolific", "pp1", {"PROLIFIC_PID": "pp1"})) == "pp1"
    with pytest.raises(ValueError):
        identity_key(PlatformEntry("none", None, {}))


def rows(study) -> int:
    with study.session() as s:
        return s.exec(select(func.count()).select_from(Participant)).one()


def enter(study, params) -> tuple[int, str]:
    r = study.client.get("/s/demo", params=params, follow_redirects=False)
    return r.status_code, r.headers.get("location", "")


def test_resume_and_separation_through_the_entry_route(make_study):
    study = make_study("demo.toml", "demo")
    status, first = enter(study, OK)
    assert status in {302, 303} and first
    study.client.cookies.clear()
    assert enter(study, {**OK, "SESSION_ID": "sess02"}) == (status, first)  # same (PID, STUDY_ID): resumes
    study.client.cookies.clear()
    status2, other = enter(study, {**OK, "STUDY_ID": "study02"})
    assert status2 == status and other != first  # same PID in another study: another participant
    assert rows(study) == 2
    study.client.cookies.clear()
    for bad in ({**OK, "PROLIFIC_PID": OK["PROLIFIC_PID"] + "\n"}, {"PROLIFIC_PID": "abc"}, {"workerId": "W"}):
        assert enter(study, bad)[0] == 400
    assert rows(study) == 2
    with study.session() as s:
        raws = sorted(p.platform_raw["SESSION_ID"] for p in s.exec(select(Participant)).all())
        pseudonyms = {p.pseudonym for p in s.exec(select(Participant)).all()}
    assert raws == ["sess01", "sess01"] and len(pseudonyms) == 2


def test_data_request_candidates_cover_every_study_of_the_person():
    from app.identity import identities_of

    raws = [
        {"PROLIFIC_PID": "P1", "STUDY_ID": "s2", "SESSION_ID": "x"},
        {"PROLIFIC_PID": "P1", "STUDY_ID": "s1"},
        {"PROLIFIC_PID": "P2", "STUDY_ID": "s3"},
        {"workerId": "P1", "hitId": "H"},
    ]
    keys = identities_of("prolific", "P1", raws)
    assert keys == ["P1", "P1\x1fs1", "P1\x1fs2"]
    assert identity_key(parse_entry({"PROLIFIC_PID": "P1", "STUDY_ID": "s2"})) in keys
    assert identities_of("mturk", "P1", raws) == ["P1", "P1\x1fH"]
