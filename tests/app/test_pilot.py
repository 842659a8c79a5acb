"""A researcher trying a round: the trial run sees the real pages but counts toward nothing and is in no default
export; it can be cleared."""

from __future__ import annotations

import csv
import io

from app import export
from tests.app.console_support import BEARER, app_client, launch_demo, login
from tests.factories import FakeClock, WebParticipant, prolific
from tests.factories.web import walk


def test_a_trial_run_counts_toward_no_coverage_total_or_default_export(tmp_path):
    clock = FakeClock()
    with app_client(tmp_path, clock) as client:
        launch_demo(client, tmp_path / "images")
        csrf = login(client)
        r = client.post("/console/rounds/demo/try", data={"csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"].startswith("/p/")
        w = walk(client, r.headers["location"], culture="korea")
        assert w.pages == 5 and "DEMO-DONE" in w.final_html
        status = client.get("/api/rounds/demo/status", headers=BEARER).json()
        assert status["participants_total"] == 0 and status["pages_submitted"] == 0
        assert all(c["done"] == 0 and c["leased"] == 0 for c in status["coverage"])
        for kind in ("responses", "participants", "approvals"):
            text = client.get(f"/api/rounds/demo/export?kind={kind}", headers=BEARER).text
            assert list(csv.reader(io.StringIO(text)))[1:] == [], kind
        from sqlmodel import Session

        with Session(client.app.state.engine) as s:
            assert list(export.response_rows(s, "demo")) == []
            assert len(list(export.response_rows(s, "demo", include_pilot=True))) > 0
        # two real people still fill every korean page (target 2): the trial run took nothing from them
        for i in range(2):
            b = WebParticipant(client, "demo", params=prolific(f"REAL-{i}"))
            b.onboard("korea")
            assert b.finish(clock) == 5
        r = client.post("/console/rounds/demo/pilot/clear", data={"csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/console/rounds/demo"
        with Session(client.app.state.engine) as s:
            assert list(export.response_rows(s, "demo", include_pilot=True)) == list(export.response_rows(s, "demo"))
        assert "clear_pilot" in client.get("/console/audit?round_id=demo").text
        assert "try_as_participant" in client.get("/console/audit?round_id=demo").text


def test_trying_needs_a_logged_in_researcher_and_csrf(tmp_path):
    with app_client(tmp_path) as client:
        launch_demo(client, tmp_path / "images")
        assert client.post("/console/rounds/demo/try").status_code == 303  # to the login page
        login(client)
        assert client.post("/console/rounds/demo/try", data={"csrf_token": "forged"}).status_code == 403
