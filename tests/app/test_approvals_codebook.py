"""A researcher approving on the platform, and a reader of the exports: approvals.csv holds exactly the completers'
raw platform ids (researcher only, audited), every export has its codebook, and one timestamp format throughout."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

from sqlmodel import Session, select

from app import export, rounds
from app.approvals import APPROVE, REVIEW, Completer, approval_rows
from app.codebook import FILES, HEADERS, codebook_json, codebook_md
from app.models import AuditLog
from tests.app.console_support import BEARER, app_client, launch_demo, login
from tests.factories import FakeClock, WebParticipant, prolific

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_approvals_export_holds_exactly_the_completers_raw_ids_and_is_audited(tmp_path):
    clock = FakeClock()
    with app_client(tmp_path, clock) as client:
        launch_demo(client, tmp_path / "images")
        done = [WebParticipant(client, "demo", params=prolific(f"DONE-{i}")) for i in range(2)]
        for b in done:
            b.onboard("korea" if b is done[0] else "nigeria")
            b.finish(clock)
        careless = WebParticipant(client, "demo", params=prolific("CARELESS"), heed_checks=False)
        careless.onboard("nigeria")
        careless.finish(clock)
        half = WebParticipant(client, "demo", params=prolific("HALF"))
        half.onboard("korea")
        half.submit_current(clock)
        WebParticipant(client, "demo", params=prolific("OTHER")).onboard("other")
        assert client.get("/api/rounds/demo/export?kind=approvals").status_code == 401
        r = client.get("/api/rounds/demo/export?kind=approvals", headers=BEARER)
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        rows = _csv(r.text)
        assert sorted(row["participant_id"] for row in rows) == ["CARELESS", "DONE-0", "DONE-1"]
        by_id = {row["participant_id"]: row for row in rows}
        assert by_id["DONE-0"]["status"] == "completed"
        # the bots rank every question alike (flag identical_criteria): a flag means "review", never "reject"
        assert all((row["suggestion"] == APPROVE) == (row["flags"] == "") for row in rows)
        careless_row = by_id["CARELESS"]
        assert careless_row["suggestion"] == REVIEW and "failed_attention" in careless_row["flags"]
        assert {row["suggestion"] for row in rows} <= {APPROVE, REVIEW}  # never "reject"
        assert all(ISO_Z.match(row["completed_at"]) for row in rows)
        assert list(rows[0]) == list(HEADERS["approvals.csv"])
        # the console has it too, and both downloads are in the audit log
        login(client)
        assert _csv(client.get("/console/rounds/demo/export/approvals").text) == rows
        with Session(client.app.state.engine) as s:
            kinds = [a.detail.get("kind") for a in s.exec(select(AuditLog).where(AuditLog.action == "export"))]
        assert kinds.count("approvals") == 2
        # no other export carries a raw platform id
        for kind in ("responses", "participants", "snapshot"):
            text = client.get(f"/api/rounds/demo/export?kind={kind}", headers=BEARER).text
            assert "DONE-0" not in text and "CARELESS" not in text, kind


def test_mturk_rows_fill_the_bulk_upload_columns_and_never_reject():
    from datetime import datetime

    t = datetime(2026, 5, 1, 9, 30, 0, 125_000)
    people = [
        Completer(1, "mturk", {"workerId": "W1", "assignmentId": "A1", "hitId": "H"}, "p-1", "completed", t, 0),
        Completer(2, "mturk", {"workerId": "W2", "assignmentId": "A2", "hitId": "H"}, "p-2", "completed", t, 1),
        Completer(3, "mturk", {"workerId": "W3", "assignmentId": "A3", "hitId": "H"}, "p-3", "excluded", t, 0),
        Completer(4, "mturk", {"workerId": "W4", "assignmentId": "A4", "hitId": "H"}, "p-4", "active", None, 0),
    ]
    rows = approval_rows(people, {2: ("failed_attention",)}, {3: True})
    assert [(r["WorkerId"], r["AssignmentId"], r["HITId"], r["Approve"], r["Reject"]) for r in rows] == [
        ("W1", "A1", "H", "x", ""),
        ("W2", "A2", "H", "", ""),
        ("W3", "A3", "H", "", ""),
    ]
    assert [r["suggestion"] for r in rows] == [APPROVE, REVIEW, REVIEW]
    assert rows[0]["completed_at"] == "2026-05-01T09:30:00.125Z"


def test_every_export_has_a_codebook_entry_for_each_column_in_order(tmp_path):
    assert set(FILES) == set(HEADERS)
    for name, cols in FILES.items():
        assert tuple(c.name for c in cols) == HEADERS[name], name
        assert all(c.type and c.meaning for c in cols), name
    data = json.loads(codebook_json())
    assert [c["name"] for c in data["files"]["responses.csv"]] == list(HEADERS["responses.csv"])
    md = codebook_md()
    assert all(f"| `{c}` |" in md for cols in HEADERS.values() for c in cols)


def test_export_cli_writes_codebook_beside_and_one_timestamp_format(tmp_path, monkeypatch, capsys):
    clock = FakeClock()
    db = f"sqlite:///{tmp_path / 'study.db'}"
    with app_client(tmp_path, clock, database_url=db) as client:
        launch_demo(client, tmp_path / "images")
        b = WebParticipant(client, "demo", params=prolific("CLI-1"))
        b.onboard("korea")
        b.finish(clock)
    monkeypatch.setenv("DATABASE_URL", db)
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    out = tmp_path / "out"
    for kind in ("responses", "participants", "approvals"):
        assert export.main(["--round", "demo", "--kind", kind, "--out", str(out / f"{kind}.csv")]) == 0
    assert (out / "codebook.md").is_file() and json.loads((out / "codebook.json").read_text())["files"]
    stamps = []
    for kind, cols in (
        ("responses", ["submitted_at"]),
        ("participants", ["created_at", "completed_at"]),
        ("approvals", ["completed_at"]),
    ):
        rows = list(csv.DictReader((out / f"{kind}.csv").open()))
        assert rows and list(rows[0]) == list(HEADERS[f"{kind}.csv"])
        stamps += [r[c] for r in rows for c in cols if r[c]]
    assert stamps and all(ISO_Z.match(s) for s in stamps), stamps[:3]
    capsys.readouterr()
    assert export.main(["--round", "nope", "--out", str(out / "x.csv")]) == 2
    assert capsys.readouterr().err.startswith("python -m app.export: error: no round 'nope'")


def test_rounds_list_and_reclaim(tmp_path, monkeypatch, capsys):
    from datetime import UTC, datetime, timedelta

    clock = FakeClock(datetime.now(UTC) - timedelta(hours=2))  # the CLI runs on the real clock: leases ran out
    db = f"sqlite:///{tmp_path / 'study.db'}"
    with app_client(tmp_path, clock, database_url=db) as client:
        launch_demo(client, tmp_path / "images")
        WebParticipant(client, "demo", params=prolific("IDLE")).onboard("korea")
    monkeypatch.setenv("DATABASE_URL", db)
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    assert rounds.main(["list"]) == 0
    assert re.search(r"^demo\s+open\s+demo\s+\S+Z\s+1 participants$", capsys.readouterr().out, re.M)
    assert rounds.main(["list", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert (entry["round_id"], entry["participants"]) == ("demo", 1)
    assert rounds.main(["reclaim", "--round", "demo", "--actor", "ops"]) == 0
    assert "1 participant(s) timed out" in capsys.readouterr().out
    assert rounds.main(["reclaim", "--round", "demo"]) == 0
    assert "0 participant(s) timed out" in capsys.readouterr().out
    assert rounds.main(["reclaim", "--round", "nope"]) == 2
    assert capsys.readouterr().err.startswith("python -m app.rounds: error: ")


def test_every_app_cli_option_has_help_text():
    for module in ("app.rounds", "app.export", "app.backup", "app.placeholder", "app", "study_designs"):
        args = [sys.executable, "-m", module]
        if module == "app.rounds":
            helps = [
                subprocess.run([*args, sub, "--help"], capture_output=True, text=True).stdout
                for sub in ("launch", "list", "pause", "resume", "close", "reclaim", "status")
            ]
        elif module == "study_designs":
            helps = [subprocess.run([*args, "check", "--help"], capture_output=True, text=True).stdout]
        else:
            helps = [subprocess.run([*args, "--help"], capture_output=True, text=True).stdout]
        for text in helps:
            assert "usage:" in text, (module, text)
            # an option without help text: its line ends after the metavar and the next line is not its help
            lines = (text.split("options:", 1)[1] if "options:" in text else "").splitlines() + [""]
            option = re.compile(r"\s+-{1,2}[\w-]+( [A-Z_{},.]+)?(, -{1,2}[\w-]+( [A-Z_{},.]+)?)?")
            bare = [
                line
                for line, after in zip(lines, lines[1:], strict=False)
                if option.fullmatch(line) and (not after.strip() or after.lstrip().startswith("-"))
            ]
            assert bare == [], (module, bare)
