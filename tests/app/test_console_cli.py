"""``python -m app.rounds pause|resume|close|status`` use the same operations as the console and the API."""

from __future__ import annotations

import json

from app import rounds
from tests.app.console_support import BEARER, app_client, launch_demo, login
from tests.factories import FakeClock, WebParticipant, prolific


def test_cli_state_changes_and_status_match_the_api(tmp_path, monkeypatch, capsys):
    clock = FakeClock()
    db = f"sqlite:///{tmp_path / 'study.db'}"
    with app_client(tmp_path, clock, database_url=db) as client:
        launch_demo(client, tmp_path / "images")
        bot = WebParticipant(client, "demo", params=prolific("CLI-1"))
        bot.onboard("korea")
        bot.finish(clock)
        api_status = client.get("/api/rounds/demo/status", headers=BEARER).json()
    monkeypatch.setenv("DATABASE_URL", db)
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.setenv("MEDIA_ROOT", str(tmp_path / "media"))

    assert rounds.main(["status", "--round", "demo", "--json"]) == 0
    cli_status = json.loads(capsys.readouterr().out)
    for key in ("participants_by_status", "pages_submitted", "response_rows", "coverage", "flagged"):
        assert cli_status[key] == api_status[key], key

    assert rounds.main(["pause", "--round", "demo", "--actor", "ops"]) == 0
    assert "demo: paused" in capsys.readouterr().out
    assert rounds.main(["pause", "--round", "demo"]) == 2
    assert "it is paused" in capsys.readouterr().err
    assert rounds.main(["resume", "--round", "demo"]) == 0
    assert rounds.main(["close", "--round", "demo"]) == 0
    assert rounds.main(["close", "--round", "nope"]) == 2
    capsys.readouterr()
    assert rounds.main(["status", "--round", "demo"]) == 0
    out = capsys.readouterr().out
    assert "round demo: closed" in out and "completed 1" in out and "korea" in out

    with app_client(tmp_path, clock, database_url=db) as client:
        login(client)
        audit = client.get("/console/audit?round_id=demo").text
    assert "<td>ops</td>" in audit and "<td>cli</td>" in audit
    assert all(f"<td>{action}</td>" in audit for action in ("pause", "resume", "close", "launch"))
