"""Console log-ins kept server-side, so log out (and "log out everywhere") ends a session even if its cookie is
kept; every log-in, failed log-in and log-out is audited."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col

from app.crud.common import audit
from app.db import write
from app.models import ConsoleLogin


def start_login(session: Session, *, sid: str, actor: str, now: datetime) -> None:
    with write(session):
        session.add(ConsoleLogin(sid=sid, actor=actor, created_at=now))
        audit(session, at=now, actor=actor, action="login", round_id=None)


def login_live(session: Session, sid: str) -> bool:
    row = session.get(ConsoleLogin, sid)
    return row is not None and row.ended_at is None


def failed_login(session: Session, *, client: str, actor: str, now: datetime, blocked_s: float) -> None:
    with write(session):
        audit(
            session, at=now, actor=actor, action="login failed", round_id=None, client=client, wait_s=round(blocked_s)
        )


def end_login(session: Session, *, sid: str, actor: str, now: datetime) -> None:
    with write(session):
        session.exec(
            update(ConsoleLogin)
            .where(col(ConsoleLogin.sid) == sid, col(ConsoleLogin.ended_at).is_(None))
            .values(ended_at=now)
        )
        audit(session, at=now, actor=actor, action="logout", round_id=None)


def end_all_logins(session: Session, *, actor: str, now: datetime) -> int:
    """Log every console session out (this one too); returns how many were open."""
    with write(session):
        n = session.exec(update(ConsoleLogin).where(col(ConsoleLogin.ended_at).is_(None)).values(ended_at=now)).rowcount  # type: ignore[attr-defined]
        audit(session, at=now, actor=actor, action="logout everywhere", round_id=None, sessions=n)
    return n
