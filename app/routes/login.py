"""Console log-in and log-out (``/console/login``, ``/console/logout``, ``/console/logout-everywhere``).

Wrong tokens back off per address (``app.loginguard``) and are audited; log-ins are kept server-side
(``app.crud.console_logins``), so log out ends a session even if a copy of its cookie was kept.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.crud import console_logins
from app.deps import ClockDep, SessionDep, TemplatesDep
from app.routes.researcher import _render, _see_other
from app.security import (
    COOKIE_NAME,
    AuthConfigDep,
    ConsoleWriteDep,
    clean_actor,
    clear_session_cookie,
    cookie_secure,
    make_session_cookie,
    new_sid,
    read_session_cookie,
    safe_next,
    set_session_cookie,
    token_matches,
)

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request,
    cfg: AuthConfigDep,
    templates: TemplatesDep,
    session: SessionDep,
    next: str = "/console",  # noqa: A002
):
    data = read_session_cookie(cfg, request.cookies.get(COOKIE_NAME))
    if data is not None and console_logins.login_live(session, data["sid"]):
        return _see_other(safe_next(next))
    return _render(templates, request, "login.html", {"next": safe_next(next), "error": None}, None)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    cfg: AuthConfigDep,
    templates: TemplatesDep,
    session: SessionDep,
    clock: ClockDep,
    token: Annotated[str, Form(max_length=512)] = "",
    actor: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/console",  # noqa: A002
):
    guard = request.app.state.login_guard
    client = request.client.host if request.client else "unknown"
    ctx = {"next": safe_next(next)}
    verdict = guard.check(client)
    if not verdict.allowed:  # backing off: the token is not even looked at
        error = f"Too many wrong tokens. Please wait {verdict.retry_after_header} s and try again."
        response = _render(templates, request, "login.html", ctx | {"error": error}, None, status_code=429)
        response.headers["Retry-After"] = verdict.retry_after_header
        return response
    if not token_matches(token, cfg.researcher_token):
        after = guard.failed(client)
        console_logins.failed_login(
            session, client=client, actor=clean_actor(actor), now=clock(), blocked_s=after.retry_after
        )
        error = "That token is not right." if cfg.researcher_token else "RESEARCHER_TOKEN is not set on the server."
        return _render(templates, request, "login.html", ctx | {"error": error}, None, status_code=401)
    guard.succeeded(client)
    sid = new_sid()
    console_logins.start_login(session, sid=sid, actor=clean_actor(actor), now=clock())
    response = _see_other(safe_next(next))
    set_session_cookie(response, make_session_cookie(cfg, actor, sid=sid), secure=cookie_secure(request))
    return response


@router.post("/logout")
def logout(who: ConsoleWriteDep, session: SessionDep, clock: ClockDep) -> RedirectResponse:
    """End this log-in server-side: the cookie no longer opens the console, even if a copy was kept."""
    console_logins.end_login(session, sid=who.sid, actor=who.actor, now=clock())
    response = _see_other("/console/login")
    clear_session_cookie(response)
    return response


@router.post("/logout-everywhere")
def logout_everywhere(who: ConsoleWriteDep, session: SessionDep, clock: ClockDep) -> RedirectResponse:
    """End every open console log-in (every browser, this one too)."""
    console_logins.end_all_logins(session, actor=who.actor, now=clock())
    response = _see_other("/console/login")
    clear_session_cookie(response)
    return response
