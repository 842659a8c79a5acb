"""FastAPI dependencies shared by the route modules: settings, a session per request, the clock, templates, and
the participant or round a participant URL names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from sqlmodel import Session

from app import crud
from app.clock import Clock
from app.config import Settings
from app.crud import Loaded
from app.db import new_session
from app.flow import NotFound
from app.models import Round
from app.snapshots import get_round


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_session(request: Request) -> Iterator[Session]:
    session = new_session(request.app.state.engine)
    try:
        yield session
    finally:
        session.close()


def get_clock(request: Request) -> Clock:
    return request.app.state.clock


def get_templates(request: Request) -> Jinja2Templates:
    return request.app.state.templates


# Aliases for route signatures (``session: SessionDep``), as in the FastAPI full-stack template.
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
ClockDep = Annotated[Clock, Depends(get_clock)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]


def get_current_participant(code: str, session: SessionDep) -> Loaded:
    """The participant of the link ``/p/{code}``, their round's design and their state (read, not locked)."""
    try:
        return crud.load(session, code)
    except NotFound:
        raise NotFound(
            "This participant link is not valid. Please open the study from the recruitment platform.",
            heading="Link not recognised",
        ) from None


def get_current_round(round_id: str, session: SessionDep) -> Round:
    rnd = get_round(session, round_id)
    if rnd is None:
        raise NotFound("Please check the link you were given.", heading="Study not found")
    return rnd


CurrentParticipant = Annotated[Loaded, Depends(get_current_participant)]
CurrentRound = Annotated[Round, Depends(get_current_round)]
