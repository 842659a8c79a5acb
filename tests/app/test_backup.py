"""``python -m app.backup``: an online copy of a live study restores to the same export and the same resume point."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app import backup
from app.export import response_rows
from tests.factories import onboarded
from tests.reliability.harness import DESIGNS, REPO
from tests.reliability.inproc import start


def _export(study) -> list[dict]:
    with study.session() as s:
        return list(response_rows(s, study.round_id))


def test_sqlite_backup_while_serving_restores_everything(tmp_path):
    live = start(tmp_path / "live", DESIGNS / "demo.toml", "bk")
    try:
        person = onboarded(live.client, "bk", "korea")
        code = person.code
        for _i in range(2):
            action, data = person.prepare()
            assert live.client.post(action, data=data).status_code == 303
        action, _ = person.prepare()  # page 2 is open in the participant's browser
        other = onboarded(live.client, "bk", "nigeria")
        out = tmp_path / "backups" / "study.sqlite"
        db_url = live.settings.database_url
        proc = subprocess.run(
            [sys.executable, "-m", "app.backup", "--out", str(out), "--quiet"],
            cwd=REPO,
            env={**os.environ, "DATABASE_URL": db_url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert "restore:" in proc.stdout and out.is_file()
        # the live study goes on after the backup: that answer is not in the copy
        a2, d2 = other.prepare()
        assert live.client.post(a2, data=d2).status_code == 303
        before = [r for r in _export(live) if r["participant_culture"] == "korea"]
    finally:
        live.close()

    restored = start(tmp_path / "restored", DESIGNS / "demo.toml", "unused", database_url=f"sqlite:///{out}")
    try:
        restored.round_id = "bk"
        rows = _export(restored)
        assert rows == before and len(rows) == 2 * 4 * 3
        resumed = restored.client.get(f"/p/{code}")
        assert resumed.status_code == 200 and action in resumed.text  # the participant resumes on page 2
    finally:
        restored.close()


def test_backup_refuses_clearly(tmp_path, capsys):
    assert backup.main(["--out", str(tmp_path / "x.db"), "--database-url", f"sqlite:///{tmp_path / 'no.db'}"]) == 2
    assert "no SQLite database" in capsys.readouterr().err
    assert backup.main(["--out", str(tmp_path / "x"), "--database-url", "mysql://u@h/db"]) == 2
    assert "unsupported database" in capsys.readouterr().err


def test_postgres_without_pg_dump_prints_the_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(backup.shutil, "which", lambda name: None)
    url = "postgresql+psycopg://study:s3cret@db.example:5432/study"
    assert backup.main(["--out", str(tmp_path / "dump"), "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert "pg_dump is not installed" in err and "pg_dump --format=custom" in err and "pg_restore" in err
    assert "s3cret" not in err  # the password never ends up on a command line or in a log


PG_ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.mark.postgres
def test_postgres_backup_with_pg_dump_restores(tmp_path):
    psycopg = pytest.importorskip("psycopg")
    if backup.shutil.which("pg_dump") is None or backup.shutil.which("pg_restore") is None:
        pytest.skip("pg_dump/pg_restore not installed")
    from tests.reliability.harness import reset_postgres

    admin = PG_ADMIN.replace("+psycopg", "")
    try:
        src_url = reset_postgres(admin, "scoft_backup_src")
        dst_url = reset_postgres(admin, "scoft_backup_dst")
    except psycopg.OperationalError as err:
        pytest.skip(f"PostgreSQL not reachable: {err}")
    live = start(tmp_path / "live", DESIGNS / "demo.toml", "pgbk", database_url=src_url)
    try:
        person = onboarded(live.client, "pgbk", "nigeria")
        action, data = person.prepare()
        assert live.client.post(action, data=data).status_code == 303
        out = tmp_path / "study.dump"
        assert backup.main(["--out", str(out), "--database-url", src_url, "--quiet"]) == 0
        before = _export(live)
    finally:
        live.close()
    plain, _ = backup.libpq_url(backup.make_url(dst_url))
    subprocess.run(["pg_restore", "--no-owner", "--dbname", plain, str(out)], check=True, capture_output=True)
    restored = start(tmp_path / "restored", DESIGNS / "demo.toml", "unused2", database_url=dst_url)
    try:
        restored.round_id = "pgbk"
        assert _export(restored) == before and len(before) == 4 * 3
    finally:
        restored.close()
