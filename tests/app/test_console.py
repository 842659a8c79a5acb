"""The HTML console: CSRF, launch with every problem listed, monitor, pause/close, leases, exclusion, deletion."""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import re

import pytest

from app.researcher_ops import upload_name
from tests.app.console_support import BEARER, app_client, demo_inputs, launch_demo, login
from tests.factories import FakeClock, WebParticipant, prolific


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def client(tmp_path, clock):
    with app_client(tmp_path, clock) as c:
        launch_demo(c, tmp_path / "images")
        yield c


def _status(client, round_id="demo") -> dict:
    return client.get(f"/api/rounds/{round_id}/status", headers=BEARER).json()


def _export(client, kind: str, round_id="demo") -> list[dict]:
    r = client.get(f"/api/rounds/{round_id}/export", params={"kind": kind}, headers=BEARER)
    assert r.status_code == 200, r.text
    return list(csv.DictReader(io.StringIO(r.text)))


def test_state_changes_need_a_csrf_token_of_this_session(client):
    csrf = login(client, "Ada")
    assert client.post("/console/rounds/demo/status/pause").status_code == 403
    assert client.post("/console/rounds/demo/status/pause", data={"csrf_token": csrf + "x"}).status_code == 403
    other_session_csrf = login(client, "Bob")  # a new login starts a new session: the old token is void
    assert client.post("/console/rounds/demo/status/pause", data={"csrf_token": csrf}).status_code == 403
    assert _status(client)["status"] == "open"
    r = client.post("/console/rounds/demo/status/pause", data={"csrf_token": other_session_csrf})
    assert r.status_code == 303 and r.headers["location"] == "/console/rounds/demo"
    assert _status(client)["status"] == "paused"
    audit = client.get("/console/audit").text
    assert "Bob" in audit and "pause" in audit


def test_launch_form_lists_every_problem_at_once(client, tmp_path):
    csrf = login(client)
    design, manifest = demo_inputs(tmp_path / "images")
    lines = manifest.read_text().splitlines()
    entries = [json.loads(x) for x in lines]
    entries[0]["sha256"] = "0" * 64  # a wrong hash
    entries[1]["model_id"] = "dalle"  # an unknown model (and so a page without one of its models)
    del entries[2]  # a page misses an image
    bad = "\n".join(json.dumps(e) for e in entries) + "\n{not json\n"
    r = client.post(
        "/console/launch",
        data={
            "csrf_token": csrf,
            "round_id": "Bad Id!",
            "images_dir": str(manifest.parent),
            "design_path": str(design),
        },
        files={"manifest_file": ("wave-3.jsonl", bad.encode(), "application/jsonl")},
    )
    assert r.status_code == 422
    problems = [html.unescape(p) for p in re.findall(r"<li>(.*?)</li>", r.text, flags=re.S)]
    text = "\n".join(problems)
    assert "round id" in text
    assert "sha256" in text and "does not match" in text
    assert "'dalle' is not in the design" in text
    assert "no image for model" in text
    assert f"manifest wave-3.jsonl:{len(entries) + 1}: not valid JSON" in text  # named as uploaded, with the line
    assert "/tmp" not in text and "uploaded manifest" not in text
    assert len(problems) >= 5
    assert "nothing was launched" in r.text
    assert [x["id"] for x in client.get("/api/rounds", headers=BEARER).json()] == ["demo"]


@pytest.mark.parametrize(
    "filename,named",
    [
        ("my-study.toml", "design my-study.toml"),
        ("C:\\Users\\ada\\my-study.toml", "design my-study.toml"),  # a folder some clients send is dropped
        ("../../etc/my-study.toml", "design my-study.toml"),
    ],
)
def test_launch_problems_name_the_uploaded_file(client, tmp_path, filename, named):
    csrf = login(client)
    _, manifest = demo_inputs(tmp_path / "images")
    bad_design = b'id = "x"\ntitle = "A study"\nseed = = 3\n'
    r = client.post(
        "/console/launch",
        data={"csrf_token": csrf, "round_id": "wave-4", "manifest_path": str(manifest)},
        files={"design_file": (filename, bad_design, "text/plain")},
    )
    assert r.status_code == 422
    problems = [html.unescape(p) for p in re.findall(r"<li>(.*?)</li>", r.text, flags=re.S)]
    assert len(problems) == 1 and problems[0].startswith(f"{named}: not valid TOML"), problems
    assert "line 3" in problems[0]
    r = client.post(
        "/console/launch",
        data={"csrf_token": csrf, "round_id": "wave-4", "manifest_path": str(manifest)},
        files={"design_file": (filename, b"\xff\xfe", "text/plain")},
    )
    assert f"{named}: not UTF-8 text" in html.unescape(r.text)


def test_an_upload_without_a_usable_name_is_called_uploaded():
    assert upload_name("manifest", "wave\n3\x00.jsonl") == "manifest wave3.jsonl"
    assert upload_name("design", None) == upload_name("design", " \t") == "uploaded design"


def test_launch_from_uploads_freezes_the_exact_bytes(client, tmp_path):
    csrf = login(client)
    design, manifest = demo_inputs(tmp_path / "images")
    design_bytes, manifest_bytes = design.read_bytes(), manifest.read_bytes()
    r = client.post(
        "/console/launch",
        data={"csrf_token": csrf, "round_id": "wave-2", "images_dir": str(manifest.parent)},
        files={
            "design_file": ("demo.toml", design_bytes, "text/plain"),
            "manifest_file": ("manifest.jsonl", manifest_bytes, "text/plain"),
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/rounds/wave-2", r.text
    snap = client.get("/console/rounds/wave-2/export/snapshot")
    assert snap.headers["content-disposition"] == 'attachment; filename="wave-2-snapshot.json"'
    data = snap.json()
    assert data["design_sha256"] == hashlib.sha256(design_bytes).hexdigest()
    assert data["manifest_sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    assert data["design_toml"] == design_bytes.decode()
    assert len(data["manifest"]) == len(manifest_bytes.decode().splitlines())
    page = client.get("/console").text
    assert "wave-2" in page and "demo" in page


def test_monitor_shows_a_participants_rankings_and_refreshes_itself(client, clock):
    login(client)
    page = client.get("/console/rounds/demo").text
    assert '<meta http-equiv="refresh" content="30">' in page
    assert "<script" not in page.split("</head>")[1]  # no inline script in the body (CSP)
    assert "0 of 16 rankings" in page
    bot = WebParticipant(client, "demo", params=prolific("PID-A"))
    bot.onboard("korea")
    assert bot.finish(clock) == 5  # 4 pages + 1 attention check
    page = client.get("/console/rounds/demo?refresh=0").text
    assert "http-equiv" not in page
    assert "4 of 16 rankings" in page
    korea = re.search(r"<caption>korea: (\d+) / (\d+) done", page)
    assert korea and korea.groups() == ("4", "8")
    assert "PROLIFIC_PID={{%PROLIFIC_PID%}}&amp;STUDY_ID={{%STUDY_ID%}}&amp;SESSION_ID={{%SESSION_ID%}}" in page
    assert "DEMO-DONE" in page
    assert "ExternalQuestion" in page


def test_pause_closes_entry_but_people_already_in_finish(client, clock):
    csrf = login(client)
    inside = WebParticipant(client, "demo", params=prolific("PID-IN"))
    inside.onboard("korea")
    inside.submit_current(clock)
    client.post("/console/rounds/demo/status/pause", data={"csrf_token": csrf})
    late = WebParticipant(client, "demo", params=prolific("PID-LATE"))
    assert late.enter().status_code == 503
    assert inside.finish(clock) == 4  # the rest of the pages are accepted while paused
    assert _status(client)["participants_by_status"]["completed"] == 1
    client.post("/console/rounds/demo/status/resume", data={"csrf_token": csrf})
    assert late.enter().status_code == 303


def test_close_is_final(client, clock):
    csrf = login(client)
    inside = WebParticipant(client, "demo", params=prolific("PID-IN"))
    inside.onboard("nigeria")
    answered = inside.prepare()
    r = client.post("/console/rounds/demo/status/close", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert WebParticipant(client, "demo", params=prolific("PID-NEW")).enter().status_code == 410
    # people already inside finish the pages they hold, so nobody loses work they are paid for
    assert inside.post(answered).status_code in (200, 303)
    assert inside.finish(clock) == 4  # 3 more regular pages and the attention check
    assert _status(client)["participants_by_status"]["completed"] == 1
    r = client.post("/console/rounds/demo/status/resume", data={"csrf_token": csrf})
    assert r.status_code == 409 and "closed" in r.text
    assert "Closed for good" in client.get("/console/rounds/demo").text


def test_close_refuses_pages_whose_lease_expired(client, clock):
    csrf = login(client)
    inside = WebParticipant(client, "demo", params=prolific("PID-IN"))
    inside.onboard("nigeria")
    answered = inside.prepare()
    client.post("/console/rounds/demo/status/close", data={"csrf_token": csrf})
    clock.advance(minutes=31)  # demo leases last 30 minutes
    assert inside.post(answered).status_code == 409
    assert _status(client)["pages_submitted"] == 0


def test_expired_leases_return_pages_to_the_pool(client, clock):
    csrf = login(client)
    # demo: 4 korean pages, target 2: each person holds only the page they are on
    idle = [WebParticipant(client, "demo", params=prolific(f"IDLE-{i}")) for i in range(2)]
    for b in idle:
        b.onboard("korea")
    late_answer = idle[0].prepare()
    s = _status(client)
    korea = next(c for c in s["coverage"] if c["culture"] == "korea")
    assert (korea["done"], korea["leased"]) == (0, 2)

    clock.advance(minutes=31)  # demo lease_minutes = 30
    korea = next(c for c in _status(client)["coverage"] if c["culture"] == "korea")
    assert korea["leased"] == 0
    fresh = WebParticipant(client, "demo", params=prolific("FRESH"))
    fresh.onboard("korea")
    assert fresh.finish(clock) == 5

    r = client.post("/console/rounds/demo/reclaim", data={"csrf_token": csrf})
    assert r.status_code == 303
    s = _status(client)
    assert s["participants_by_status"]["timed_out"] == 2 and s["live_leases"] == 0
    # a timed-out person's answer is kept (flagged late, beyond the page's target), and they are told their time ran
    # out; the rest of their pages stay in the pool
    assert idle[0].post(late_answer).status_code == 303
    assert "Your time ran out" in idle[0].page().text
    s = _status(client)
    assert s["participants_by_status"]["timed_out"] == 2 and s["live_leases"] == 0
    assert "reclaim_leases" in client.get("/console/audit?round_id=demo").text


def test_exclude_keeps_rows_and_delete_removes_them(client, clock):
    csrf = login(client)
    bots = [WebParticipant(client, "demo", params=prolific(f"P-{i}")) for i in range(2)]
    for b in bots:
        b.onboard("korea")
        b.finish(clock)
    rows = _export(client, "responses")
    people = sorted({r["participant_id"] for r in rows})
    assert len(people) == 2
    first, second = people
    page = client.get("/console/rounds/demo/participants").text
    assert first in page and "PROLIFIC" not in page and "P-0" not in page  # pseudonyms only

    r = client.post(f"/console/rounds/demo/participants/{first}/exclude", data={"csrf_token": csrf, "reason": ""})
    assert r.status_code == 422
    r = client.post(
        f"/console/rounds/demo/participants/{first}/exclude", data={"csrf_token": csrf, "reason": "straight-lining"}
    )
    assert r.status_code == 303
    rows = _export(client, "responses")
    assert {r["excluded"] for r in rows if r["participant_id"] == first} == {"true"}
    assert len(rows) == _status(client)["response_rows"]
    parts = {p["participant_id"]: p for p in _export(client, "participants")}
    assert parts[first]["status"] == "excluded" and parts[first]["exclusion_reason"] == "straight-lining"
    page = client.get("/console/rounds/demo/participants").text
    assert f"/participants/{first}/exclude" not in page and f"/participants/{second}/exclude" in page

    r = client.post(f"/console/rounds/demo/participants/{second}/delete", data={"csrf_token": csrf, "confirm": "no"})
    assert r.status_code == 422
    r = client.post(f"/console/rounds/demo/participants/{second}/delete", data={"csrf_token": csrf, "confirm": second})
    assert r.status_code == 303
    rows = _export(client, "responses")
    assert {r["participant_id"] for r in rows} == {first}
    assert second not in {p["participant_id"] for p in _export(client, "participants")}
    audit = client.get("/console/audit").text
    assert "delete_participant" in audit and "exclude_participant" in audit and "straight-lining" in audit
    assert "<td>export</td>" in audit and "responses" in audit
    r = client.post(f"/console/rounds/demo/participants/{second}/delete", data={"csrf_token": csrf, "confirm": second})
    assert r.status_code == 404


def test_participants_export_has_no_raw_platform_ids(client, clock):
    login(client)
    b = WebParticipant(client, "demo", params=prolific("PROLIFIC-RAW-ID-123"))
    b.onboard("korea")
    b.finish(clock)
    text = client.get("/console/rounds/demo/export/participants").text
    assert "PROLIFIC-RAW-ID-123" not in text and b.code not in text
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["status"] == "completed" and row["culture"] == "korea" and row["pages_submitted"] == "5"
    responses = client.get("/console/rounds/demo/export/responses")
    assert responses.headers["content-type"].startswith("text/csv")
    assert "PROLIFIC-RAW-ID-123" not in responses.text


def test_a_large_manifest_upload_is_accepted_on_the_launch_route_only(client, tmp_path):
    csrf = login(client)
    design, manifest = demo_inputs(tmp_path / "images")
    lines = manifest.read_text().splitlines()
    padded = "\n".join(lines) + "\n" + "\n" * 200_000  # blank lines are allowed: a 200 kB manifest, same images
    r = client.post(
        "/console/launch",
        data={"csrf_token": csrf, "round_id": "big", "design_path": str(design), "images_dir": str(manifest.parent)},
        files={"manifest_file": ("manifest.jsonl", padded.encode(), "text/plain")},
    )
    assert r.status_code == 303, r.text[:500]
    big = {"reason": "x" * 200_000, "csrf_token": csrf}
    r = client.post("/console/rounds/big/participants/p-1/exclude", data=big)
    assert r.status_code == 413


def test_a_data_request_is_found_by_platform_id_and_deleted(client, clock):
    csrf = login(client)
    b = WebParticipant(client, "demo", params=prolific("5f1c0ffee5f1c0ffee5f1c0f"))
    b.onboard("nigeria")
    b.finish(clock)
    r = client.post(
        "/console/rounds/demo/participants/lookup",
        data={"csrf_token": csrf, "platform": "prolific", "platform_id": "5f1c0ffee5f1c0ffee5f1c0f"},
    )
    found = re.search(r'<code id="found">([^<]+)</code>', r.text)
    assert r.status_code == 200 and found
    r = client.post(
        "/console/rounds/demo/participants/lookup",
        data={"csrf_token": csrf, "platform": "prolific", "platform_id": "someone-else"},
    )
    assert "No participant of this round" in r.text
    r = client.post(
        f"/console/rounds/demo/participants/{found.group(1)}/delete",
        data={"csrf_token": csrf, "confirm": found.group(1)},
    )
    assert r.status_code == 303 and _export(client, "responses") == []
    assert _status(client)["participants_total"] == 0


def _browser_round(tmp_path, clock) -> str:
    """Launch the demo from the console form, one participant, pause and close; returns the downloaded export."""
    with app_client(tmp_path, clock) as client:
        csrf = login(client)
        design, manifest = demo_inputs(tmp_path / "images")
        r = client.post(
            "/console/launch",
            data={"csrf_token": csrf, "round_id": "demo", "design_path": str(design), "manifest_path": str(manifest)},
        )
        assert r.status_code == 303 and r.headers["location"] == "/console/rounds/demo"
        assert "0 of 16 rankings" in client.get("/console/rounds/demo").text
        bot = WebParticipant(client, "demo", params=prolific("BROWSER-1"))
        bot.onboard("korea")
        bot.finish(clock)
        assert "4 of 16 rankings" in client.get("/console/rounds/demo").text
        for action in ("pause", "close"):
            assert client.post(f"/console/rounds/demo/status/{action}", data={"csrf_token": csrf}).status_code == 303
        export = client.get("/console/rounds/demo/export/responses")
        assert export.headers["content-disposition"] == 'attachment; filename="demo-responses.csv"'
        return export.text


def test_researcher_runs_a_round_from_the_browser(tmp_path, clock):
    from app.export import COLUMNS

    rows = list(csv.DictReader(io.StringIO(_browser_round(tmp_path, clock))))
    assert list(rows[0]) == COLUMNS
    assert len({(r["page_id"], r["is_attention_check"]) for r in rows}) == 5  # 4 pages + the attention check
    assert len(rows) == 5 * 4 * 3 - 3 * 3  # the attention page asks one criterion, not four


def test_the_analysis_reads_the_console_export(tmp_path, clock):
    from analysis.load import read_responses

    text = _browser_round(tmp_path, clock)
    path = tmp_path / "responses.csv"
    path.write_text(text)
    assert len(read_responses(path)) == len(text.splitlines()) - 1


def test_excluded_participants_pages_return_to_the_pool(client, clock):
    csrf = login(client)
    # demo: 4 korean pages, target 2, 4 pages each: two finished people fill every korean page
    done = [WebParticipant(client, "demo", params=prolific(f"DONE-{i}")) for i in range(2)]
    for b in done:
        b.onboard("korea")
        assert b.finish(clock) == 5
    full = WebParticipant(client, "demo", params=prolific("FULL"))
    full.onboard("korea")
    assert "return the study" in full.page().text
    assert _status(client)["participants_by_status"]["ineligible"] == 1
    careless = _export(client, "responses")[0]["participant_id"]
    r = client.post(
        f"/console/rounds/demo/participants/{careless}/exclude", data={"csrf_token": csrf, "reason": "straight-lining"}
    )
    assert r.status_code == 303
    # the excluded person's rankings no longer count, so a newcomer gets their pages
    again = WebParticipant(client, "demo", params=prolific("AGAIN"))
    again.onboard("korea")
    assert again.finish(clock) == 5
