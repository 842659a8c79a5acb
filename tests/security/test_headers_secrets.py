"""Security headers on every kind of response; secrets and raw platform ids never in logs, pages or exports."""

from __future__ import annotations

import asyncio
import logging
import re

import httpx
from sqlalchemy import event

from tests.factories import crawl_participant, onboarded
from tests.reliability.formclient import Participant, run
from tests.reliability.harness import DESIGNS, Server, StudyEnv
from tests.reliability.inproc import RESEARCHER_TOKEN, SECRET_KEY, start

BEARER = {"Authorization": f"Bearer {RESEARCHER_TOKEN}"}
PIDS = {"PROLIFIC_PID": "RAWPID5f3a9c", "STUDY_ID": "RAWSTUDY77e1", "SESSION_ID": "RAWSESSION0b2d"}


def _check_headers(label: str, headers) -> list[str]:
    problems = []
    csp = headers.get("content-security-policy", "")
    directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";") if d.strip()}
    script = directives.get("script-src", directives.get("default-src", ""))
    if "frame-ancestors 'none'" not in csp:
        problems.append(f"{label}: CSP without frame-ancestors 'none': {csp!r}")
    if not script or "'unsafe-inline'" in script or "'unsafe-eval'" in script or "*" in script.split():
        problems.append(f"{label}: script-src allows inline or any source: {script!r}")
    if "default-src" not in directives:
        problems.append(f"{label}: CSP without default-src")
    if headers.get("x-content-type-options") != "nosniff":
        problems.append(f"{label}: X-Content-Type-Options {headers.get('x-content-type-options')!r}")
    if headers.get("x-frame-options", "").upper() != "DENY":
        problems.append(f"{label}: X-Frame-Options {headers.get('x-frame-options')!r}")
    if "server" in headers:
        problems.append(f"{label}: Server header {headers['server']!r}")
    return problems


def test_security_headers_on_every_kind_of_response(demo):
    c = demo.client
    crawl = crawl_participant(c, "r1", "korea", PIDS)
    responses = [(f"{s.method} {s.url} {s.status}", s.headers) for s in crawl.seen]
    assert {s.status for s in crawl.seen} >= {200, 303}
    extra = {
        "404 page": c.get("/p/not-a-participant"),
        "unknown round": c.get("/s/nope"),
        "missing image": c.get("/i/nope"),
        "static js": c.get("/static/rank.js"),
        "console login": c.get("/console/login"),
        "console redirect": c.get("/console"),
        "api 401": c.get("/api/rounds"),
        "api 200": c.get("/api/rounds", headers=BEARER),
        "openapi": c.get("/openapi.json"),
        "body too large": c.post("/p/x/consent", content=b"a=" + b"x" * 200_000),
        "method not allowed": c.delete("/s/r1"),
        "not found": c.get("/nothing-here"),
    }
    assert extra["body too large"].status_code == 413
    responses += [(k, r.headers) for k, r in extra.items()]
    problems = [p for label, h in responses for p in _check_headers(label, h)]
    assert problems == []


def test_secrets_and_raw_ids_never_in_logs_pages_or_exports(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    study = start(tmp_path, DESIGNS / "demo.toml", "sec")
    try:
        c = study.client
        crawl = crawl_participant(c, "sec", "nigeria", PIDS)
        assert crawl.pages > 0
        # failures are logged too: a wrong token, a forged form, a storage error
        c.get("/api/rounds", headers={"Authorization": f"Bearer {RESEARCHER_TOKEN}-wrong"})
        c.post("/console/login", data={"token": f"{RESEARCHER_TOKEN}-wrong"})
        person = onboarded(c, "sec", "korea", {**PIDS, "PROLIFIC_PID": PIDS["PROLIFIC_PID"] + "b"})
        action, data = person.prepare()
        engine = study.app.state.engine

        def fail(conn, cursor, statement, *args):
            if statement.lstrip().upper().startswith("INSERT INTO RANKING"):
                raise __import__("sqlite3").OperationalError("database is locked")

        event.listen(engine, "before_cursor_execute", fail)
        assert c.post(action, data=data).status_code == 503
        event.remove(engine, "before_cursor_execute", fail)
        c.cookies.clear()
        assert c.post("/console/login", data={"token": RESEARCHER_TOKEN}).status_code == 303
        pages = [c.get(u).text for u in ("/console", "/console/rounds/sec", "/console/rounds/sec/participants")]
        exports = [
            c.get("/api/rounds/sec/export", params={"kind": k}, headers=BEARER)
            for k in ("responses", "participants", "snapshot")
        ]
        assert all(r.status_code == 200 for r in exports)
        assert "p-" in exports[0].text and "p-" in exports[1].text  # pseudonyms are there instead
        console_exports = [c.get(f"/console/rounds/sec/export/{k}").text for k in ("responses", "participants")]
    finally:
        study.close()
    secrets_ = [SECRET_KEY, RESEARCHER_TOKEN, *PIDS.values()]
    participant_html = "\n".join(s.text for s in crawl.seen if "/i/" not in s.url)
    client_side = ("httpx", "httpx2", "hpack", "markdown_it", "asyncio")
    server_log = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records if not r.name.startswith(client_side)
    )
    where = {
        "log": server_log,
        "participant pages": participant_html,
        "console pages": "\n".join(pages),
        "exports": "\n".join(r.text for r in exports) + "\n".join(console_exports),
    }
    leaks = [f"{name}: {s}" for name, text in where.items() for s in secrets_ if s in text]
    assert leaks == []
    assert re.search(r"storage busy .*database is locked", server_log)  # the failure was logged, without parameters
    assert "INSERT INTO" not in server_log


def test_served_process_logs_no_secrets_or_raw_ids(tmp_path):
    study = StudyEnv(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    study.launch(DESIGNS / "demo.toml", "logs", size=16)
    server = Server(study)
    with server:

        async def go() -> None:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
                p = Participant(pid=PIDS["PROLIFIC_PID"], culture="korea", round_id="logs", completion_code="DEMO-DONE")
                await run(p, client)
                assert p.done
                await client.get("/api/rounds", headers={"Authorization": "Bearer wrong"})
                r = await client.get(
                    "/api/rounds/logs/export", headers={"Authorization": f"Bearer {study.researcher_token}"}
                )
                assert r.status_code == 200 and PIDS["PROLIFIC_PID"] not in r.text
                await client.post("/console/login", data={"token": study.researcher_token})

        asyncio.run(go())
    log = server.log_text()
    assert "Uvicorn running" in log or "Application startup complete" in log
    for secret in (study.secret_key, study.researcher_token, PIDS["PROLIFIC_PID"], "reliability"):
        assert secret not in log, secret
