"""FastAPI dependencies shared by the route modules: settings, a session per request, the clock, templates."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from sqlmodel import Session

from app.clock import Clock
from app.config import Settings
from app.db import new_session


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
