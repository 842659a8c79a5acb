"""FastAPI dependencies shared by the route modules: settings, the database, a session per request, the clock,
and templates.

The plain getters are ``async def`` so they cost no thread hop; the participant routes reach the database through
``DbDep`` (one hop per request, ``app.db.Database``), the console and API through ``SessionDep``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from sqlmodel import Session

from app.clock import Clock
from app.config import Settings
from app.db import Database, new_session


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_db(request: Request) -> Database:
    return request.app.state.db


def get_session(request: Request) -> Iterator[Session]:
    session = new_session(request.app.state.engine)
    try:
        yield session
    finally:
        session.close()


async def get_clock(request: Request) -> Clock:
    return request.app.state.clock


async def get_templates(request: Request) -> Jinja2Templates:
    return request.app.state.templates


# Aliases for route signatures (``session: SessionDep``), as in the FastAPI full-stack template.
SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[Database, Depends(get_db)]
SessionDep = Annotated[Session, Depends(get_session)]
ClockDep = Annotated[Clock, Depends(get_clock)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
