"""The request path's own machinery: the one-hop database runner (limiter, reconnect-and-retry), single statements
outside a transaction, and the per-process cache of a round's images, keyed by the round's launch."""

from __future__ import annotations

import re
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from app.db import Database, create_tables, make_engine, new_session, single_read, single_write
from app.models import Round, RoundImage
from app.snapshots import round_images
from tests.factories import walk
from tests.factories.postgres import pg_schema


@pytest.fixture
def db(tmp_path: Path) -> Database:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}", pool_size=2)
    create_tables(engine)
    yield Database(engine, threads=2)
    engine.dispose()


def _dropped() -> DBAPIError:
    err = OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
    err.connection_invalidated = True
    return err


def test_idempotent_work_is_retried_once_on_a_fresh_connection_after_losing_its_connection(db):
    sessions: list[Session] = []

    def work(session: Session) -> int:
        sessions.append(session)
        if len(sessions) == 1:
            raise _dropped()
        return session.exec(text("SELECT 41 + 1")).one()[0]

    assert anyio.run(lambda: db.run(work, retry=True)) == 42
    assert len(sessions) == 2 and sessions[0] is not sessions[1]


def test_work_that_is_not_safe_to_repeat_is_not_retried(db):
    calls = []

    def work(session: Session) -> None:
        calls.append(1)
        raise _dropped()

    with pytest.raises(DBAPIError):
        anyio.run(lambda: db.run(work))
    assert calls == [1]


def test_other_database_errors_are_never_retried(db):
    calls = []

    def work(session: Session) -> None:
        calls.append(1)
        session.exec(text("SELECT * FROM no_such_table"))

    with pytest.raises(DBAPIError):
        anyio.run(lambda: db.run(work, retry=True))
    assert calls == [1]


def test_no_more_than_the_limiter_allows_use_the_database_at_once(db):
    inside, most = 0, 0
    guard = threading.Lock()

    def work(session: Session) -> None:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        threading.Event().wait(0.02)
        with guard:
            inside -= 1

    async def many() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(db.run, work)

    anyio.run(many)
    assert most == db.threads == 2


def _round(round_id: str) -> Round:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    return Round(
        id=round_id,
        design_id="d",
        design_toml="",
        design_sha256="0",
        manifest_json="",
        manifest_sha256="0",
        created_at=now,
    )


def _image(round_id: str, image_id: str, path: str) -> RoundImage:
    return RoundImage(
        round_id=round_id,
        image_id=image_id,
        token=image_id + "-t",
        model_id="m",
        culture="c",
        prompt_id="p",
        seed=1,
        page_id="pg",
        sha256="0" * 64,
        path=path,
        width=8,
        height=8,
    )


def test_a_rounds_images_are_read_once_per_launch(db):
    with new_session(db.engine) as s:
        s.add(_round("cache-r"))
        s.add(_image("cache-r", "img-1", "first.png"))
        s.commit()
        assert round_images(s, "cache-r", "launch-1")["img-1"].path == "first.png"
        # the same launch: never read again (a launched round's images do not change)
        s.exec(text("UPDATE roundimage SET path = 'second.png' WHERE round_id = 'cache-r'"))
        s.commit()
        assert round_images(s, "cache-r", "launch-1")["img-1"].path == "first.png"
        # the same round id launched again (a new secret): read afresh, the old launch's files never served
        assert round_images(s, "cache-r", "launch-2")["img-1"].path == "second.png"


def test_a_round_without_images_yet_is_not_remembered_empty(db):
    with new_session(db.engine) as s:
        s.add(_round("cache-empty"))
        s.commit()
        assert round_images(s, "cache-empty", "launch-1") == {}
        s.add(_image("cache-empty", "img-1", "a.png"))
        s.commit()
        assert "img-1" in round_images(s, "cache-empty", "launch-1")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path: Path):
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'w.db'}", pool_size=2)
        yield eng
        eng.dispose()
        return
    with pg_schema("w_") as url:
        eng = make_engine(url, pool_size=2)
        yield eng
        eng.dispose()


def _stamp_table(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as c:
        c.execute(text("CREATE TABLE stamp (id INTEGER PRIMARY KEY, shown TEXT)"))
        c.execute(text("INSERT INTO stamp (id, shown) VALUES (1, NULL)"))


STAMP = text("UPDATE stamp SET shown = :at WHERE id = 1 AND shown IS NULL")


def _shown(engine) -> str | None:  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        return c.execute(text("SELECT shown FROM stamp WHERE id = 1")).scalar()


def test_a_single_write_after_a_single_read_commits_at_once_without_a_transaction(engine):
    """A page view's "first shown" stamp: one conditional statement on the read's connection, visible to everyone
    as soon as it ran (no BEGIN, no COMMIT), and a second stamp changes nothing."""
    _stamp_table(engine)
    sent: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        sent.append(statement)

    with new_session(engine) as session:
        single_read(session)
        session.connection().execute(text("SELECT shown FROM stamp WHERE id = 1")).all()
        event.listen(engine, "before_cursor_execute", record)
        single_write(session, STAMP, {"at": "first"})
        event.remove(engine, "before_cursor_execute", record)
        assert _shown(engine) == "first"  # committed before the session ends
        single_write(session, STAMP, {"at": "second"})
    assert _shown(engine) == "first"
    assert [s.split()[0] for s in sent] == ["UPDATE"], sent  # no BEGIN and no COMMIT around it


def test_a_single_write_inside_a_transaction_commits_that_transaction_and_its_own(engine):
    """Never left pending in a transaction that the session would roll back on close."""
    _stamp_table(engine)
    with new_session(engine) as session:
        session.connection().execute(text("SELECT shown FROM stamp WHERE id = 1")).all()  # a plain transaction
        single_write(session, STAMP, {"at": "stamped"})
        session.rollback()  # what closing the session would do to anything still open
    assert _shown(engine) == "stamped"


def _viewer(make_study, database_url: str | None = None):  # type: ignore[no-untyped-def]
    study = make_study(database_url=database_url)
    p = walk(study.client, "/s/r1", culture="korea", stop_after_pages=1)  # on their second page, seen once
    page = study.client.get(f"/p/{p.code}")
    images = sorted(set(re.findall(r'src="(/i/[^"]+)"', page.text)))
    assert page.status_code == 200 and images
    return study, p.code, images


def test_page_views_and_images_take_no_connection_from_the_pool_once_warm(make_study):
    study, code, images = _viewer(make_study)
    checkouts: list[object] = []

    def checkout(*args: object) -> None:
        checkouts.append(args)

    event.listen(study.engine, "checkout", checkout)
    try:
        for _ in range(3):
            assert study.client.get(f"/p/{code}").status_code == 200
            assert all(study.client.get(url).status_code == 200 for url in images)
            assert study.client.get("/p/not-a-participant").status_code == 404  # a refused link keeps its reader
    finally:
        event.remove(study.engine, "checkout", checkout)
    assert checkouts == []
    db = study.client.app.state.db
    assert db._readers.qsize() <= db.threads


@pytest.mark.postgres
def test_page_views_survive_the_server_dropping_every_connection(make_study):
    """A restarted PostgreSQL (every connection of the app terminated, kept readers included): the next page view
    and images are answered on fresh connections, not with an error, and so are those after."""
    name = "scoft_drop_" + secrets.token_hex(4)
    with pg_schema("drop_") as url:
        study, code, images = _viewer(make_study, f"{url}&application_name={name}")
        for _ in range(2):
            assert study.client.get(f"/p/{code}").status_code == 200
        db = study.client.app.state.db
        db.call(lambda _: db.call(lambda _: None, reads=True), reads=True)  # two requests at once: two readers
        assert db._readers.qsize() == 2
        admin = make_engine(url)
        with admin.connect() as c:
            killed = c.execute(
                text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :n"),
                {"n": name},
            ).scalar()
        admin.dispose()
        assert killed >= 1
        for _ in range(3):
            assert study.client.get(f"/p/{code}").status_code == 200
            assert all(study.client.get(u).status_code == 200 for u in images)
