"""A locked database and a full disk: the participant gets a clear page (503 / 507, no traceback), nothing from the
failed request is stored, nothing acknowledged before is lost, and sending the same page again later works."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlmodel import col, func, select

from app.export import response_rows
from app.models import Assignment, Ranking
from tests.factories import onboarded
from tests.reliability.harness import DESIGNS
from tests.reliability.inproc import RESEARCHER_TOKEN, start

AUTH = {"Authorization": f"Bearer {RESEARCHER_TOKEN}"}


def _short_busy_timeout(engine) -> None:
    @event.listens_for(engine, "connect")
    def _short(dbapi_conn, _record) -> None:  # runs after the app's own connect hook
        dbapi_conn.execute("PRAGMA busy_timeout=200")

    engine.dispose()


def _stored(study) -> tuple[int, int]:
    with study.session() as s:
        slots = s.exec(select(func.count()).select_from(Assignment).where(col(Assignment.submitted_at).is_not(None)))
        rankings = s.exec(select(func.count()).select_from(Ranking))
        return slots.one(), rankings.one()


def _human_error(r, status: int, words: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert words in r.text and "Traceback" not in r.text and "sqlite" not in r.text.lower()
    assert "<h1>" in r.text


def test_locked_database_answers_503_and_the_retry_is_stored_once(tmp_path):
    study = start(tmp_path, DESIGNS / "demo.toml", "busy")
    try:
        _short_busy_timeout(study.app.state.engine)
        c = study.client
        person = onboarded(c, "busy", "korea")
        code = person.code
        action, data = person.prepare()
        assert c.post(action, data=data).status_code == 303  # page 0 acknowledged
        action, data = person.prepare()  # page 1 shown (its show time is recorded before the lock)
        before = _stored(study)

        blocker = sqlite3.connect(study.settings.database_url.removeprefix("sqlite:///"), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            r = c.post(action, data=data)
            _human_error(r, 503, "busy")
            assert r.headers["retry-after"].isdigit()
            api = c.post("/api/rounds/busy/pause", headers=AUTH)
            assert api.status_code == 503 and api.json()["detail"]
            again = c.get(f"/p/{code}")  # reading still works: the participant sees the same page
            assert again.status_code == 200 and action in again.text
        finally:
            blocker.rollback()
            blocker.close()
        assert _stored(study) == before  # nothing from the refused request

        assert c.post(action, data=data).status_code == 303
        assert c.post(action, data=data).status_code == 303  # the same page again is an idempotent replay
        with study.session() as s:
            rows = list(response_rows(s, "busy"))
        pages = {(r["page_id"], r["criterion"], r["initial_position"]) for r in rows}
        assert len(rows) == len(pages) == 2 * 4 * 3  # two pages x four criteria x three images, each once
    finally:
        study.close()


@pytest.fixture
def small_disk(tmp_path: Path):
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> None:
    chunk = b"\0" * 4096
    with path.open("wb", buffering=0) as fh:
        while True:
            try:
                fh.write(chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC
                return


def test_full_disk_answers_507_and_nothing_acknowledged_is_lost(tmp_path, small_disk):
    db = small_disk / "study.db"
    study = start(tmp_path, DESIGNS / "demo.toml", "full", database_url=f"sqlite:///{db}")
    try:
        c = study.client
        person = onboarded(c, "full", "nigeria")
        code = person.code
        action, data = person.prepare()
        assert c.post(action, data=data).status_code == 303
        action, data = person.prepare()
        before = _stored(study)

        with contextlib.closing(sqlite3.connect(db)) as conn:  # the next write must grow the WAL file
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0
        filler = small_disk / "filler"
        _fill(filler)
        try:
            r = c.post(action, data=data)
            _human_error(r, 507, "storage")
            again = c.get(f"/p/{code}")
            assert again.status_code == 200 and action in again.text
            second = c.post(action, data=data)
            assert second.status_code == 507
        finally:
            filler.unlink()
        assert _stored(study) == before

        assert c.post(action, data=data).status_code == 303
        with study.session() as s:
            rows = list(response_rows(s, "full"))
        assert len(rows) == len({(r["page_id"], r["criterion"], r["initial_position"]) for r in rows}) == 2 * 4 * 3
        with contextlib.closing(sqlite3.connect(db)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        study.close()
