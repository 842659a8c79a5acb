"""Which failures count as a busy database or a full disk, and the pages an unexpected error gets."""

from __future__ import annotations

import errno
import sqlite3

from sqlalchemy.exc import OperationalError

from app.errors import BUSY, FULL, classify
from tests.reliability.harness import DESIGNS
from tests.reliability.inproc import start


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"pg error {sqlstate}")
        self.sqlstate = sqlstate


def _wrapped(orig: BaseException) -> OperationalError:
    return OperationalError("INSERT INTO ranking ...", {}, orig)


def test_classify_storage_failures():
    assert classify(_wrapped(sqlite3.OperationalError("database is locked"))) is BUSY
    assert classify(_wrapped(sqlite3.OperationalError("database or disk is full"))) is FULL
    assert classify(OSError(errno.ENOSPC, "No space left on device")) is FULL
    assert classify(OSError(errno.EDQUOT, "Disk quota exceeded")) is FULL
    assert classify(_wrapped(_PgError("53100"))) is FULL
    for state in ("55P03", "40001", "40P01", "53300"):
        assert classify(_wrapped(_PgError(state))) is BUSY
    try:
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as inner:
            raise RuntimeError("while saving") from inner
    except RuntimeError as outer:
        assert classify(outer) is BUSY  # found through the cause chain
    assert classify(ValueError("bad")) is None
    assert classify(_wrapped(sqlite3.OperationalError("no such table: ranking"))) is None
    assert BUSY.status == 503 and FULL.status == 507


def test_unexpected_errors_get_a_plain_page_not_a_traceback(tmp_path):
    study = start(tmp_path, DESIGNS / "demo.toml", "e", raise_server_exceptions=False)
    try:

        def boom() -> None:
            raise RuntimeError("secret internals /var/lib/thing")

        study.app.add_api_route("/boom", boom)
        study.app.add_api_route("/api/boom", boom)
        page = study.client.get("/boom")
        assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
        assert "Something went wrong" in page.text
        assert "Traceback" not in page.text and "secret internals" not in page.text
        api = study.client.get("/api/boom")
        assert api.status_code == 500 and api.json()["error"] == "Something went wrong"
        assert "secret internals" not in api.text
    finally:
        study.close()
