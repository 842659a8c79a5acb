"""The SQL a participant's requests send, counted (not timed): a ranking-page view and a page submission.

A page view reads only what it shows — the participant, their round and the page they are on with their progress —
in one statement (plus the one-time "first shown" stamp); a submission stores a page in one transaction of a fixed
number of statements, whatever the size of the round. A change that adds a query per request fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from app.config import Settings
from app.main import create_app
from tests.factories import DESIGNS, NO_ENROL_LIMIT, FakeClock, launch_placeholders, onboarded
from tests.factories.postgres import pg_schema

# statements per request at most, as sent to the driver (SQLite's explicit BEGIN / BEGIN IMMEDIATE included); a first
# view's "shown" stamp is one statement outside any transaction
SQLITE = {"view": 1, "first_view": 2, "submit": 6}
# PostgreSQL begins implicitly (a page view runs in autocommit: not even that); a submission is the locked load, one
# statement that stores the page and locks the next page's row, and the conditional lease of that page
POSTGRES = {"view": 1, "first_view": 2, "submit": 3}


@contextmanager
def counted(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def _count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", _count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", _count)


def _walk_and_count(client: TestClient, engine: Engine, expected: dict[str, int]) -> None:
    p = onboarded(client, "r1", "korea")  # on (and has seen) the first page
    action, data = p.prepare()
    assert client.post(action, data=data, follow_redirects=False).status_code == 303
    for page in range(1, 3):
        with counted(engine) as first:
            assert p.page().status_code == 200
        with counted(engine) as again:
            assert p.page().status_code == 200  # a reload: nothing to stamp
        action, data = p.prepare()  # reads the page once more, outside the count
        with counted(engine) as submit:
            r = client.post(action, data=data, follow_redirects=False)
        assert r.status_code == 303, r.text[:500]
        shown = "\n---\n".join
        assert len(first) == expected["first_view"], f"page {page + 1}, first view:\n{shown(first)}"
        assert len(again) == expected["view"], f"page {page + 1}, view:\n{shown(again)}"
        assert len(submit) <= expected["submit"], f"page {page + 1}, submission:\n{shown(submit)}"
        # the round's images never change after launch: read once per process, never per request
        assert not any("roundimage" in s.lower() for s in first + again + submit)
        # and no view reads the participant's other slots or the round's design text
        assert "design_toml" not in shown(first + again)


def _app(url: str, tmp_path: Path) -> TestClient:
    settings = Settings(
        database_url=url,
        media_root=tmp_path / "media",
        secret_key="s",
        researcher_token="t",
        **NO_ENROL_LIMIT,
    )
    launch_placeholders(url, settings.media_root, DESIGNS / "demo.toml", tmp_path / "img", "r1", size=16)
    return TestClient(create_app(settings, clock=FakeClock()))


def test_statement_counts_on_sqlite(tmp_path):
    with _app(f"sqlite:///{tmp_path / 'q.db'}", tmp_path) as client:
        _walk_and_count(client, client.app.state.engine, SQLITE)


def test_a_submission_does_not_scan_the_round(tmp_path):
    """The next page's coverage is counted from the (round, page, …) covering index, not over every slot of the
    round nor through the table's rows."""
    with _app(f"sqlite:///{tmp_path / 'q.db'}", tmp_path) as client:
        engine = client.app.state.engine
        p = onboarded(client, "r1", "korea")
        action, data = p.prepare()
        with counted(engine) as submit:
            client.post(action, data=data, follow_redirects=False)
        lease = next(s for s in submit if s.lstrip().upper().startswith("UPDATE") and "leased_until" in s)
        with engine.connect() as c:
            plan = c.exec_driver_sql("EXPLAIN QUERY PLAN " + lease, tuple([0] * lease.count("?"))).fetchall()
        details = [row[-1] for row in plan]
        assert any("COVERING INDEX ix_assignment_page_coverage" in d for d in details), details


@pytest.mark.postgres
def test_statement_counts_on_postgres(tmp_path):
    with pg_schema("q_") as url, _app(url, tmp_path) as client:
        _walk_and_count(client, client.app.state.engine, POSTGRES)
