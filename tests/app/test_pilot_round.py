"""A round launched as a pilot: everyone who enters is flagged pilot (no coverage, no totals, no default export)
until ``python -m app.rounds promote`` (audited) opens it for real participants; the pilot's people stay flagged."""

from __future__ import annotations

import csv
import io

from sqlmodel import Session, select

from app import crud, export, rounds
from app.flow import RoundStateError
from app.models import AuditLog, Participant, Round
from tests.app.console_support import BEARER, app_client, demo_inputs, login
from tests.factories import FakeClock, WebParticipant, prolific


def _status(client) -> dict:
    return client.get("/api/rounds/demo/status", headers=BEARER).json()


def test_a_pilot_round_counts_nobody_until_promoted_and_keeps_its_pilots_flagged(tmp_path):
    clock = FakeClock()
    with app_client(tmp_path, clock) as client:
        csrf = login(client)
        design, manifest = demo_inputs(tmp_path / "images")
        form = {"csrf_token": csrf, "round_id": "demo", "design_path": str(design), "manifest_path": str(manifest)}
        r = client.post("/console/launch", data=form | {"pilot": "yes"}, files={"x": ("", b"")}, follow_redirects=False)
        assert r.status_code == 303, r.text
        with Session(client.app.state.engine) as s:
            assert s.get(Round, "demo").pilot
        for i in range(2):  # two pilot participants fill every korean page (target 2) as far as they can tell
            b = WebParticipant(client, "demo", params=prolific(f"PILOT-{i}"))
            b.onboard("korea")
            assert b.finish(clock) == 5
        status = _status(client)
        assert status["participants_total"] == 0 and status["pages_submitted"] == 0
        assert all(c["done"] == 0 and c["leased"] == 0 for c in status["coverage"])
        text = client.get("/api/rounds/demo/export?kind=responses", headers=BEARER).text
        assert list(csv.reader(io.StringIO(text)))[1:] == []

        with Session(client.app.state.engine) as s:
            assert crud.promote_round(s, round_id="demo", actor="Ada", now=clock()) == 2
            try:
                crud.promote_round(s, round_id="demo", actor="Ada", now=clock())
                raise AssertionError("a promoted round was promoted again")
            except RoundStateError:
                pass
            assert not s.get(Round, "demo").pilot
            audits = s.exec(select(AuditLog).where(AuditLog.action == "promote")).all()
            assert [(a.actor, a.detail["pilot_participants_kept"]) for a in audits] == [("Ada", 2)]
        # real participants now count, and still get every korean page: the pilots took none
        for i in range(2):
            b = WebParticipant(client, "demo", params=prolific(f"REAL-{i}"))
            b.onboard("korea")
            assert b.finish(clock) == 5
        status = _status(client)
        assert status["participants_total"] == 2
        with Session(client.app.state.engine) as s:
            people = s.exec(select(Participant).where(Participant.round_id == "demo")).all()
            assert sorted(p.pilot for p in people) == [False, False, True, True]
            real = {p.pseudonym for p in people if not p.pilot}
            assert {r["participant_id"] for r in export.response_rows(s, "demo")} == real
            assert len({r["participant_id"] for r in export.response_rows(s, "demo", include_pilot=True)}) == 4


def test_cli_launches_a_pilot_and_promotes_it(tmp_path, monkeypatch, capsys):
    with app_client(tmp_path) as client:
        url = str(client.app.state.engine.url)
        design, manifest = demo_inputs(tmp_path / "images")
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("MEDIA_ROOT", str(tmp_path / "media-cli"))
        args = ["launch", "--design", str(design), "--manifest", str(manifest), "--round", "pil", "--pilot"]
        assert rounds.main(args) == 0
        assert "as a pilot" in capsys.readouterr().out
        with Session(client.app.state.engine) as s:
            assert s.get(Round, "pil").pilot
        assert rounds.main(["promote", "--round", "pil", "--actor", "cli-test"]) == 0
        assert "promoted" in capsys.readouterr().out
        assert rounds.main(["promote", "--round", "pil"]) == 2  # not a pilot any more
        assert rounds.main(["promote", "--round", "nope"]) == 2
        with Session(client.app.state.engine) as s:
            assert not s.get(Round, "pil").pilot
            assert s.exec(select(AuditLog).where(AuditLog.action == "promote")).one().actor == "cli-test"
