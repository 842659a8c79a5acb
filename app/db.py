"""Engines and transactions: SQLite (WAL, busy timeout, serialised writers) or PostgreSQL (psycopg)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel, create_engine

_SQLITE_WRITE_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """Build an engine for ``url``. SQLite files get WAL, ``synchronous=NORMAL`` and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # transactions are begun explicitly below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_tables(engine: Engine) -> None:
    from app import models  # noqa: F401  (registers the tables)

    SQLModel.metadata.create_all(engine)


def drop_tables(engine: Engine) -> None:
    from app import models  # noqa: F401

    SQLModel.metadata.drop_all(engine)


def new_session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)


def _write_lock(engine: Engine) -> threading.Lock:
    key = str(engine.url)
    with _LOCKS_GUARD:
        return _SQLITE_WRITE_LOCKS.setdefault(key, threading.Lock())


@contextmanager
def write(session: Session) -> Iterator[Session]:
    """One write transaction, committed on exit and rolled back on error.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE`` (other processes wait on the busy timeout) and a
    per-process lock keeps this process's writers queued in Python rather than spinning on the database lock.
    On PostgreSQL callers take row locks (``FOR UPDATE``) where they read-then-write.
    """
    engine = session.get_bind()
    if session.in_transaction():
        session.commit()
    if is_sqlite(engine):  # type: ignore[arg-type]
        lock = _write_lock(engine)  # type: ignore[arg-type]
        with lock:
            session.connection(execution_options={"sqlite_immediate": True})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
        return
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """An engine for ``url`` (tables created) and one session on it, both closed on exit: for CLIs and scripts."""
    engine = make_engine(url)
    try:
        create_tables(engine)
        with new_session(engine) as session:
            yield session
    finally:
        engine.dispose()
