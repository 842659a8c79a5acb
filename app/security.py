"""Researcher authentication: token login with a signed session cookie, CSRF tokens, Bearer auth for the API.

The console (HTML under ``/console``) logs in with ``RESEARCHER_TOKEN`` once (wrong tokens back off, see
``app.loginguard``, and are audited) and then carries a signed, HttpOnly, SameSite=Strict cookie naming a log-in
that is kept server-side, so log out ends it even if the cookie is kept; every state-changing form also carries a
CSRF token signed for that session. The JSON API
under ``/api`` takes ``Authorization: Bearer <RESEARCHER_TOKEN>`` on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Form, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.crud.console_logins import failed_login, login_live
from app.deps import SessionDep

COOKIE_NAME = "scoft_console"
COOKIE_PATH = "/console"
SESSION_MAX_AGE_S = 12 * 3600
CSRF_FIELD = "csrf_token"
LOGIN_PATH = "/console/login"
_SESSION_SALT = "scoft-console-session"
_CSRF_SALT = "scoft-console-csrf"
_MAX_ACTOR_LEN = 64


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """The two secrets auth needs; built from the app's Settings."""

    secret_key: str
    researcher_token: str


@dataclass(frozen=True, slots=True)
class ResearcherSession:
    """A logged-in console session: ``sid`` ties CSRF tokens to it, ``actor`` names who acts in the audit log."""

    sid: str
    actor: str
    csrf_token: str


@dataclass(frozen=True, slots=True)
class ApiResearcher:
    actor: str = "api"


def auth_config(request: Request) -> AuthConfig:
    settings = request.app.state.settings
    return AuthConfig(secret_key=settings.secret_key, researcher_token=settings.researcher_token)


# -- pure helpers ----------------------------------------------------------------------------------------------


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an empty configured token never matches (the console stays locked)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _token_fingerprint(cfg: AuthConfig) -> str:
    """Binds sessions to the current token: rotating RESEARCHER_TOKEN logs every session out."""
    return hmac.new(cfg.secret_key.encode(), cfg.researcher_token.encode(), hashlib.sha256).hexdigest()[:16]


def _serializer(cfg: AuthConfig, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(cfg.secret_key, salt=salt)


def clean_actor(name: str | None) -> str:
    """A printable, bounded actor name for the audit log (defaults to ``researcher``)."""
    text = "".join(ch for ch in (name or "") if ch.isprintable()).strip()[:_MAX_ACTOR_LEN]
    return text or "researcher"


def new_sid() -> str:
    return secrets.token_urlsafe(16)


def make_session_cookie(cfg: AuthConfig, actor: str, *, sid: str | None = None) -> str:
    """A signed cookie naming session ``sid``; it is honoured only while that log-in is open in the database."""
    payload = {"sid": sid or new_sid(), "actor": clean_actor(actor), "fp": _token_fingerprint(cfg)}
    return _serializer(cfg, _SESSION_SALT).dumps(payload)


def read_session_cookie(cfg: AuthConfig, value: str | None, max_age_s: int = SESSION_MAX_AGE_S) -> dict | None:
    """The session payload, or None when missing, forged, expired or made under another token."""
    if not value or not cfg.researcher_token:
        return None
    try:
        data: Any = _serializer(cfg, _SESSION_SALT).loads(value, max_age=max_age_s)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
        return None
    if not hmac.compare_digest(str(data.get("fp", "")), _token_fingerprint(cfg)):
        return None
    return data


def make_csrf_token(cfg: AuthConfig, sid: str) -> str:
    return _serializer(cfg, _CSRF_SALT).dumps(sid)


def csrf_valid(cfg: AuthConfig, token: str | None, sid: str, max_age_s: int = SESSION_MAX_AGE_S) -> bool:
    if not token:
        return False
    try:
        bound = _serializer(cfg, _CSRF_SALT).loads(token, max_age=max_age_s)
    except BadSignature:
        return False
    return isinstance(bound, str) and hmac.compare_digest(bound, sid)


def safe_next(target: str | None) -> str:
    """Only same-site console paths are followed after login (no open redirect)."""
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console"


# -- cookie edges ----------------------------------------------------------------------------------------------


def cookie_secure(request: Request) -> bool:
    """``Secure`` cookies when the request came over https (directly, or as a trusted proxy's
    ``X-Forwarded-Proto`` says: see ``FORWARDED_ALLOW_IPS``), or always when ``COOKIE_SECURE`` is on."""
    setting = request.app.state.settings.cookie_secure
    return request.url.scheme == "https" if setting is None else setting


def set_session_cookie(response: Response, cookie: str, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE_NAME,
        cookie,
        max_age=SESSION_MAX_AGE_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, httponly=True, samesite="strict")


# -- dependencies ----------------------------------------------------------------------------------------------

AuthConfigDep = Annotated[AuthConfig, Depends(auth_config)]


def _login_redirect(request: Request) -> HTTPException:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(
        status_code=status.HTTP_303_SEE_OTHER,
        detail="login required",
        headers={"Location": f"{LOGIN_PATH}?next={quote(safe_next(target), safe='')}"},
    )


def console_session(request: Request, cfg: AuthConfigDep, db: SessionDep) -> ResearcherSession:
    """Require a valid console session cookie of a log-in still open server-side; anonymous browsers (and cookies
    of sessions that logged out) are redirected to the login page."""
    data = read_session_cookie(cfg, request.cookies.get(COOKIE_NAME))
    if data is None or not login_live(db, data["sid"]):
        raise _login_redirect(request)
    sid = data["sid"]
    return ResearcherSession(sid=sid, actor=clean_actor(data.get("actor")), csrf_token=make_csrf_token(cfg, sid))


ConsoleDep = Annotated[ResearcherSession, Depends(console_session)]


def console_csrf(
    session: ConsoleDep, cfg: AuthConfigDep, csrf_token: Annotated[str, Form(max_length=512)] = ""
) -> ResearcherSession:
    """Require a logged-in session AND a CSRF token signed for it (every state-changing console form)."""
    if not csrf_valid(cfg, csrf_token, session.sid):
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="missing or invalid CSRF token")
    return session


ConsoleWriteDep = Annotated[ResearcherSession, Depends(console_csrf)]

_bearer = HTTPBearer(auto_error=False, description="RESEARCHER_TOKEN as a Bearer token")


def api_researcher(
    request: Request,
    cfg: AuthConfigDep,
    db: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiResearcher:
    """Require ``Authorization: Bearer <RESEARCHER_TOKEN>``; otherwise 401 with ``WWW-Authenticate: Bearer``.

    Wrong tokens back off and are audited as console log-ins are (one guard for both); no token at all is simply
    refused (a browser or a probe without credentials is not a guess)."""
    guard = request.app.state.login_guard
    client = request.client.host if request.client else "unknown"
    verdict = guard.check(client)
    if not verdict.allowed:
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many wrong tokens; try again later",
            headers={"Retry-After": verdict.retry_after_header},
        )
    given = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    if given and not token_matches(given, cfg.researcher_token):
        after = guard.failed(client)
        failed_login(db, client=client, actor="api", now=request.app.state.clock(), blocked_s=after.retry_after)
    elif given:
        guard.succeeded(client)
    if not token_matches(given, cfg.researcher_token):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return ApiResearcher()


ResearcherDep = Annotated[ApiResearcher, Depends(api_researcher)]
