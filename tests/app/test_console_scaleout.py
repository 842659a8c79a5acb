"""Scale-out: two uvicorn workers on one PostgreSQL database; launch over the API, concurrent participants,
then the status totals equal the export and no page is handed out beyond its target."""

from __future__ import annotations

import csv
import io
import os
import secrets
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.db import create_tables, make_engine
from tests.app.console_support import BEARER, TOKEN, demo_inputs
from tests.factories import WebParticipant, prolific

pytestmark = pytest.mark.postgres
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_database():
    """A database of its own on the test server, dropped afterwards."""
    import psycopg

    base = make_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_URL))
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"scoft_console_{secrets.token_hex(4)}"
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        pytest.skip(f"PostgreSQL not reachable at {base.render_as_string()}: {err}")
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(pg_database, tmp_path):
    engine = make_engine(pg_database)
    create_tables(engine)  # once, before the workers start
    engine.dispose()
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": pg_database,
        "SECRET_KEY": "s" * 40,
        "RESEARCHER_TOKEN": TOKEN,
        "MEDIA_ROOT": str(tmp_path / "media"),
        "ENROL_RATE_PER_CLIENT": "0",
        "ENROL_RATE_PER_ROUND": "0",
    }
    cmd = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--workers", "2"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _participant(base: str, pid: str, culture: str) -> int:
    with httpx.Client(base_url=base, timeout=30) as client:
        bot = WebParticipant(client, "demo", params=prolific(pid))
        bot.onboard(culture)
        return bot.finish()


def test_two_workers_on_postgres_status_equals_export(server, tmp_path):
    design, manifest = demo_inputs(tmp_path / "images")
    with httpx.Client(base_url=server, headers=BEARER, timeout=30) as api:
        r = api.post(
            "/api/rounds", json={"round_id": "demo", "design_path": str(design), "manifest_path": str(manifest)}
        )
        assert r.status_code == 201, r.text
        people = [(f"PG-{i}", ("korea", "nigeria")[i % 2]) for i in range(10)]
        with ThreadPoolExecutor(max_workers=6) as pool:
            pages = list(pool.map(lambda p: _participant(server, *p), people))
        assert sum(pages) > 0
        status = api.get("/api/rounds/demo/status").json()
        responses = list(csv.DictReader(io.StringIO(api.get("/api/rounds/demo/export").text)))
        participants = list(csv.DictReader(io.StringIO(api.get("/api/rounds/demo/export?kind=participants").text)))

    assert status["participants_total"] == len(participants) == len(people)
    assert status["response_rows"] == len(responses)
    submitted = {(r["participant_id"], r["page_id"], r["is_attention_check"], r["is_repeat"]) for r in responses}
    assert status["pages_submitted"] == len(submitted) == sum(pages)
    regular = {(p, page) for p, page, att, rep in submitted if att == "false" and rep == "false"}
    assert status["coverage_done"] == len(regular)
    for culture in status["coverage"]:
        for cell in culture["pages"]:
            assert cell["done"] <= cell["target"], cell  # never over-assigned across workers
            assert cell["done"] == sum(1 for _, page in regular if page == cell["page_id"])
    # demo: 4 pages per culture, target 2, 4 pages each. Pages are leased one at a time, so more than two people
    # per culture may get some; the rest were told to come back (culture step) or found every page answered
    by_status = status["participants_by_status"]
    assert by_status["completed"] >= 4 and sum(by_status.values()) == len(people)
    assert {k for k, n in by_status.items() if n} <= {"completed", "ineligible", "profile"}
    assert status["coverage_done"] == status["coverage_target"] == 16
