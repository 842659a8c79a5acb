"""A throwaway PostgreSQL schema on the test server for one test: the suites that run on PostgreSQL share it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.db import make_engine

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def pg_schema(prefix: str = "t_") -> Iterator[str]:
    """The URL of a fresh schema at ``TEST_DATABASE_URL`` (dropped afterwards); skips the test when the server
    cannot be reached."""
    schema = prefix + secrets.token_hex(6)
    try:
        admin = make_engine(PG_URL)
        with admin.connect() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
            c.commit()
    except OperationalError as err:
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {str(err).splitlines()[0]}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            c.commit()
        admin.dispose()
