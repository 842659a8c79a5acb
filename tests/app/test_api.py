"""The JSON API: rounds, launch problems, state changes with their errors, exports, status equal to the export."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest

from tests.app.console_support import BEARER, app_client, demo_inputs, launch_demo
from tests.factories import FakeClock, WebParticipant, prolific


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def client(tmp_path, clock):
    with app_client(tmp_path, clock) as c:
        launch_demo(c, tmp_path / "images")
        yield c


def _export(client, kind: str) -> str:
    r = client.get("/api/rounds/demo/export", params={"kind": kind}, headers=BEARER)
    assert r.status_code == 200, r.text
    return r.text


def test_rounds_list_and_detail(client):
    rounds = client.get("/api/rounds", headers=BEARER).json()
    assert [r["id"] for r in rounds] == ["demo"] and rounds[0]["status"] == "open"
    detail = client.get("/api/rounds/demo", headers=BEARER).json()
    assert detail["cultures"] == ["korea", "nigeria"] and detail["pages"] == {"korea": 4, "nigeria": 4}
    assert detail["models"] == ["sd", "scoft_m", "scoft_mpc"]
    rec = detail["recruitment"]
    assert rec["prolific_url"].endswith(
        "/s/demo?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
    )
    assert "<ExternalURL>" in rec["mturk_external_question"] and rec["completion_code"] == "DEMO-DONE"
    assert client.get("/api/rounds/nope", headers=BEARER).status_code == 404


def test_launch_lists_every_problem_and_refuses_duplicates(client, tmp_path):
    design, manifest = demo_inputs(tmp_path / "images")
    entries = [json.loads(x) for x in manifest.read_text().splitlines()]
    entries[0]["seed"] = 999
    entries[5]["sha256"] = "f" * 64
    r = client.post(
        "/api/rounds",
        json={
            "round_id": "wave-2",
            "design_path": str(design),
            "manifest_jsonl": "\n".join(json.dumps(e) for e in entries),
            "images_dir": str(manifest.parent),
        },
        headers=BEARER,
    )
    assert r.status_code == 422
    problems = r.json()["problems"]
    assert any("seed 999" in p for p in problems)
    assert any("does not match" in p for p in problems)
    assert any("no image for model" in p for p in problems)
    r = client.post(
        "/api/rounds",
        json={"round_id": "demo", "design_path": str(design), "manifest_path": str(tmp_path / "missing.jsonl")},
        headers=BEARER,
    )
    assert r.status_code == 422
    text = "\n".join(r.json()["problems"])
    assert "already exists" in text and "missing.jsonl" in text
    r = client.post("/api/rounds", json={"round_id": "x", "design_path": str(design)}, headers=BEARER)
    assert r.status_code == 422 and any("manifest" in p for p in r.json()["problems"])
    assert len(client.get("/api/rounds", headers=BEARER).json()) == 1


def test_state_changes_and_conflicts(client):
    def post(action: str):
        return client.post(f"/api/rounds/demo/{action}", headers=BEARER)

    assert post("resume").status_code == 409
    r = post("pause")
    assert r.status_code == 200 and r.json()["status"] == "paused"
    assert post("pause").status_code == 409
    assert post("resume").json()["status"] == "open"
    r = post("close")
    assert r.status_code == 200 and r.json()["status"] == "closed" and r.json()["closed_at"]
    for action in ("pause", "resume", "close"):
        r = post(action)
        assert r.status_code == 409 and "closed" in r.json()["detail"]
    assert client.post("/api/rounds/nope/pause", headers=BEARER).status_code == 404
    snapshot = json.loads(_export(client, "snapshot"))
    assert snapshot["status"] == "closed"


def test_snapshot_hashes_match_the_launch_inputs(client, tmp_path):
    design, manifest = demo_inputs(tmp_path / "images")
    snap = json.loads(_export(client, "snapshot"))
    assert snap["design_sha256"] == hashlib.sha256(design.read_bytes()).hexdigest()
    assert snap["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    files = {e["image_id"]: e["sha256"] for e in snap["manifest"]}
    for line in manifest.read_text().splitlines():
        e = json.loads(line)
        assert files[e["image_id"]] == e["sha256"]


def test_status_numbers_equal_the_export(client, clock):
    for i, culture in enumerate(["korea", "korea", "nigeria"]):
        b = WebParticipant(client, "demo", params=prolific(f"DONE-{i}"), heed_checks=False)
        b.onboard(culture)
        b.finish(clock)
    partial = WebParticipant(client, "demo", params=prolific("PARTIAL"))
    partial.onboard("nigeria")
    partial.submit_current(clock)
    WebParticipant(client, "demo", params=prolific("CONSENT-ONLY")).enter()

    status = client.get("/api/rounds/demo/status", headers=BEARER).json()
    responses = list(csv.DictReader(io.StringIO(_export(client, "responses"))))
    participants = list(csv.DictReader(io.StringIO(_export(client, "participants"))))

    assert status["response_rows"] == len(responses) > 0
    pages = {(r["participant_id"], r["page_id"], r["is_attention_check"], r["is_repeat"]) for r in responses}
    assert status["pages_submitted"] == len(pages)
    regular = {(p, page) for p, page, att, rep in pages if att == "false" and rep == "false"}
    assert status["regular_pages_submitted"] == len(regular)
    assert status["coverage_done"] == len(regular)
    excluded = {(r["participant_id"], r["page_id"]) for r in responses if r["excluded"] == "true"} & regular
    assert status["coverage_excluded"] == len(excluded) > 0  # careless bots ignore the marked image: most fail
    assert status["participants_total"] == len(participants) == 5
    by_status: dict[str, int] = {}
    for p in participants:
        by_status[p["status"]] = by_status.get(p["status"], 0) + 1
    assert {k: v for k, v in status["participants_by_status"].items() if v} == by_status
    assert by_status["completed"] == 3 and by_status["active"] == 1 and by_status["consent"] == 1
    assert sum(int(p["pages_submitted"]) for p in participants) == status["pages_submitted"]
    excluded_people = {r["participant_id"] for r in responses if r["excluded"] == "true"}
    assert excluded_people == {p["participant_id"] for p in participants if p["excluded"] == "true"}
    for culture in status["coverage"]:
        for c in culture["pages"]:
            assert c["done"] == sum(1 for _, page in regular if page == c["page_id"])
            assert c["excluded"] == sum(1 for _, page in excluded if page == c["page_id"])
    # every submitted page was timed by the injected clock: 10 s each
    assert status["median_seconds_per_page"] == pytest.approx(10.0)


def test_export_kind_is_validated(client):
    r = client.get("/api/rounds/demo/export", params={"kind": "everything"}, headers=BEARER)
    assert r.status_code == 422
    r = client.get("/api/rounds/demo/export", headers=BEARER)
    assert r.status_code == 200 and r.text.startswith("round_id,participant_id,participant_culture,page_id")


def test_reclaim_times_out_people_whose_leases_all_expired(client, clock):
    idle = WebParticipant(client, "demo", params=prolific("IDLE"))
    idle.onboard("korea")
    working = WebParticipant(client, "demo", params=prolific("WORKING"))
    working.onboard("nigeria")
    r = client.post("/api/rounds/demo/reclaim", headers=BEARER)
    assert r.status_code == 200 and r.json()["timed_out"] == []
    clock.advance(minutes=20)
    working.submit_current(clock)  # submitting renews the lease of the remaining pages
    clock.advance(minutes=15)  # idle's 30-minute lease has run out, working's has not
    r = client.post("/api/rounds/demo/reclaim", headers=BEARER)
    assert r.status_code == 200 and len(r.json()["timed_out"]) == 1
    status = client.get("/api/rounds/demo/status", headers=BEARER).json()
    assert status["participants_by_status"]["timed_out"] == 1 and status["participants_by_status"]["active"] == 1
    assert client.post("/api/rounds/nope/reclaim", headers=BEARER).status_code == 404
