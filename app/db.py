"""Engines and transactions: SQLite (WAL, busy timeout, serialised writers) or PostgreSQL (psycopg)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import anyio
from sqlalchemy import Connection, Engine, Executable, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel, create_engine

_SQLITE_WRITE_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
T = TypeVar("T")

# Threads that use the database at once, per process, when ``DB_THREADS`` is 0: SQLite serialises writers and the
# interpreter lock serialises Python, so more threads only add switching; PostgreSQL gains from overlapping waits.
DEFAULT_THREADS = {"sqlite": 1, "postgresql": 4}
POOL_RECYCLE_S = 1800  # PostgreSQL: connections older than this are replaced at checkout (no ping per checkout)


def default_threads(url: str) -> int:
    return DEFAULT_THREADS.get(make_url(url).get_backend_name(), 4)


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int | None = None) -> Engine:
    """Build an engine for ``url``: a pool of ``pool_size`` kept connections (plus ``max_overflow``, default
    ``pool_size``, opened only under bursts). SQLite files get WAL, ``synchronous=NORMAL`` and a busy timeout, set
    once per connection. PostgreSQL connections are recycled after ``POOL_RECYCLE_S`` rather than pinged at every
    checkout; a dropped connection invalidates the pool and ``Database.run`` retries the request once."""
    overflow = pool_size if max_overflow is None else max_overflow
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        pool: dict[str, int] = {}  # an in-memory database keeps SQLAlchemy's one-connection-per-thread pool
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            pool = {"pool_size": pool_size, "max_overflow": overflow}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)
        _configure_sqlite(engine)
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(
        url, pool_size=pool_size, max_overflow=overflow, pool_recycle=POOL_RECYCLE_S, pool_use_lifo=True
    )


def _configure_sqlite(engine: Engine) -> None:
    wal_set: list[bool] = []

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # transactions are begun explicitly below
        cur = dbapi_conn.cursor()
        if not wal_set:  # WAL is a property of the database file: once per engine is enough
            cur.execute("PRAGMA journal_mode=WAL")
            wal_set.append(True)
        cur.execute("PRAGMA synchronous=NORMAL")
        # a page cache (64 MiB) and memory-mapped reads (256 MiB) that hold a round's indexes: the default 2 MiB
        # cache makes every submission re-read index pages once the database outgrows it
        cur.execute("PRAGMA cache_size=-65536")
        cur.execute("PRAGMA mmap_size=268435456")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        options = conn.get_execution_options()
        if options.get("sqlite_no_begin", False):
            return  # a single read statement (a page view): it is its own snapshot, no transaction needed
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("sqlite_immediate", False) else "BEGIN")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


READER = "single_statement_reader"  # ``Session.info`` key of the kept connection ``Database.run(reads=True)`` lends


def single_read(session: Session) -> Connection:
    """The connection on which to run a single read outside a transaction (a page view's one statement is its own
    snapshot): the kept reader ``Database.run(reads=True)`` lent the session, else the session's own connection
    switched to no BEGIN on SQLite and autocommit on PostgreSQL (no BEGIN and ROLLBACK round trips). A later
    ``write(session)`` starts a real transaction as usual."""
    reader = session.info.get(READER)
    if reader is not None:
        return reader
    if not session.in_transaction():
        session.connection(execution_options=_SINGLE[is_sqlite(session.get_bind())])  # type: ignore[arg-type]
    return session.connection()


_SINGLE = {True: {"sqlite_no_begin": True}, False: {"isolation_level": "AUTOCOMMIT"}}


def single_write(session: Session, statement: Executable, params: dict[str, object] | None = None) -> None:
    """Run one write statement that is atomic by itself (a conditional stamp) as its own transaction: on the kept
    reader or the session's ``single_read`` connection when it has one (no BEGIN and COMMIT round trips), else in
    ``write``."""
    reader = session.info.get(READER)
    if reader is not None:
        reader.execute(statement, params)
        return
    if session.in_transaction():
        conn = session.connection()
        options = conn.get_execution_options()
        if all(options.get(k) == v for k, v in _SINGLE[is_sqlite(conn.engine)].items()):
            conn.execute(statement, params)
            return
    with write(session):
        session.connection().execute(statement, params)


def create_tables(engine: Engine) -> None:
    """Create missing tables, and missing indexes of existing tables (a database made by an earlier version)."""
    from app import models  # noqa: F401  (registers the tables)

    SQLModel.metadata.create_all(engine)
    for table in SQLModel.metadata.sorted_tables:
        for index in table.indexes:
            index.create(engine, checkfirst=True)


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


class Database:
    """The engine of a web process and its one way in: ``await db.run(work)`` runs ``work(session)`` in one worker
    thread with a fresh session (closed after), at most ``threads`` at a time (a limiter sized to the pool), so a
    request makes one thread hop and never waits for a connection while holding another.

    ``reads=True`` (a page view, an image) also lends the session a kept reader (``single_read``): one of at most
    ``threads`` connections that stay open between requests in autocommit (no BEGIN on SQLite), so a request whose
    reads are single statements takes no connection from the pool and begins no transaction. Readers are replaced
    after ``POOL_RECYCLE_S`` and when their connection was lost.

    ``retry=True`` (idempotent work: page views, images, token-checked submissions) runs ``work`` once more on a new
    connection when the first attempt lost its connection (a restarted PostgreSQL server): the error-driven
    reconnect that replaces a ping before every checkout."""

    def __init__(self, engine: Engine, threads: int) -> None:
        self.engine = engine
        self.threads = threads
        self.limiter = anyio.CapacityLimiter(threads)
        self._readers: queue.SimpleQueue[tuple[Connection, float]] = queue.SimpleQueue()
        self._single = _SINGLE[is_sqlite(engine)]

    def call(self, work: Callable[[Session], T], *, retry: bool = False, reads: bool = False) -> T:
        """``work(session)`` in the calling thread (what ``run`` does in a worker thread)."""
        try:
            return self._attempt(work, reads)
        except DBAPIError as err:
            if not (retry and err.connection_invalidated):
                raise
        return self._attempt(work, reads)

    async def run(self, work: Callable[[Session], T], *, retry: bool = False, reads: bool = False) -> T:
        return await anyio.to_thread.run_sync(lambda: self.call(work, retry=retry, reads=reads), limiter=self.limiter)

    def _attempt(self, work: Callable[[Session], T], reads: bool) -> T:
        if not reads:
            with new_session(self.engine) as session:
                return work(session)
        reader, since = self._take_reader()
        keep = True
        try:
            with new_session(self.engine) as session:
                session.info[READER] = reader
                return work(session)
        except DBAPIError as err:
            keep = False  # whatever state a failed statement left it in, it is not lent again
            if err.connection_invalidated:  # the server went away: the other kept readers are as stale
                self.close()
            raise
        finally:
            if keep and not reader.invalidated and time.monotonic() - since < POOL_RECYCLE_S:
                self._readers.put((reader, since))
            else:  # back to the pool, which replaces a lost connection
                reader.close()

    def _take_reader(self) -> tuple[Connection, float]:
        try:
            return self._readers.get_nowait()
        except queue.Empty:
            return self.engine.connect().execution_options(**self._single), time.monotonic()

    def close(self) -> None:
        """Return the kept readers to the pool (at shutdown, before the engine is disposed)."""
        while True:
            try:
                reader, _ = self._readers.get_nowait()
            except queue.Empty:
                return
            reader.close()


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
