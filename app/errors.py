"""Clear answers when storage fails: a busy or locked database (503 + Retry-After), a full disk (507), anything
else unexpected (500) — a short human page for browsers and JSON for ``/api``, never a traceback.

The failed request's transaction has already been rolled back, so nothing from it is stored and the participant
can simply send the same page again. ``install_error_handlers(app)`` wires the handlers into an app.
"""

from __future__ import annotations

import errno
import html
import logging
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import DBAPIError

from app.flow.errors import Closed, Conflict, DomainError, InvalidInput, NotFound, TryLater

log = logging.getLogger("app.errors")

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL_MARKERS = ("database or disk is full", "no space left on device", "could not extend file", "disk quota")
_BUSY_MARKERS = (
    "database is locked",
    "database table is locked",
    "database is busy",
    "lock timeout",
    "canceling statement due to lock timeout",
    "deadlock detected",
    "could not serialize access",
    "too many clients",
    "connection refused",
    "server closed the connection",
    "queuepool limit",
)
# PostgreSQL SQLSTATEs: 53100 disk_full, 53200 out_of_memory, 53300 too_many_connections, 55P03 lock_not_available,
# 40001 serialization_failure, 40P01 deadlock_detected, 57P01/57P03 admin shutdown / cannot connect now.
_PG_FULL = {"53100"}
_PG_BUSY = {"53200", "53300", "55P03", "40001", "40P01", "57P01", "57P03"}


@dataclass(frozen=True, slots=True)
class StorageFailure:
    status: int  # 503 busy, 507 full
    kind: str  # "busy" | "full"
    heading: str
    message: str


BUSY = StorageFailure(
    503,
    "busy",
    "The study is very busy",
    "Your last answer was not saved because the server is busy. Please wait a few seconds and send it again; "
    "nothing you saved before is lost.",
)
FULL = StorageFailure(
    507,
    "full",
    "The study cannot save answers right now",
    "Your last answer was not saved because the server has run out of storage space. The research team has been "
    "alerted; please try again later. Nothing you saved before is lost.",
)


def classify(exc: BaseException) -> StorageFailure | None:
    """Which storage failure ``exc`` is (walking its causes), or None when it is something else."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return FULL
        sqlstate = getattr(current, "sqlstate", None)
        if sqlstate in _PG_FULL:
            return FULL
        if sqlstate in _PG_BUSY:
            return BUSY
        text = str(current).lower()
        if any(m in text for m in _FULL_MARKERS):
            return FULL
        if any(m in text for m in _BUSY_MARKERS):
            return BUSY
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return None


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api") or "application/json" in request.headers.get("accept", "")


def _route(request: Request) -> str:
    """The route template (``/p/{code}/page/{position}``), so participant codes never reach the log."""
    route = request.scope.get("route")
    return getattr(route, "path", None) or "(unmatched route)"


def _page(request: Request, status: int, heading: str, message: str, headers: dict[str, str]) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message, "error": heading}, status_code=status, headers=headers)
    templates = getattr(request.app.state, "templates", None)
    if templates is not None:
        try:
            return templates.TemplateResponse(
                request,
                "participant/message.html",
                {"heading": heading, "paragraphs": [message], "link": None, "link_text": None},
                status_code=status,
                headers=headers,
            )
        except Exception:  # noqa: BLE001  (the error page itself must not fail)
            log.exception("error page template failed")
    body = f"<!doctype html><html lang='en'><title>{html.escape(heading)}</title><h1>{html.escape(heading)}</h1>"
    body += f"<p>{html.escape(message)}</p></html>"
    return HTMLResponse(body, status_code=status, headers=headers)


async def storage_error_handler(request: Request, exc: Exception) -> Response:
    failure = classify(exc)
    if failure is None:
        return await unexpected_error_handler(request, exc)
    # only the driver's message: SQL parameters (which may hold raw platform ids) never reach the log
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
    log.warning("%s %s: storage %s (%s): %s", request.method, _route(request), failure.kind, failure.status, reason)
    headers = {"Cache-Control": "no-store"}
    if failure.kind == "busy":
        headers["Retry-After"] = "5"
    return _page(request, failure.status, failure.heading, failure.message, headers)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    failure = classify(exc)
    if failure is not None:
        return await storage_error_handler(request, exc)
    log.error("%s %s: unexpected %s", request.method, _route(request), type(exc).__name__, exc_info=exc)
    return _page(
        request,
        500,
        "Something went wrong",
        "Your last answer may not have been saved. Please go back and send it again; nothing you saved before is lost.",
        {"Cache-Control": "no-store"},
    )


_DOMAIN_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (InvalidInput, 400),
    (Closed, 410),
    (TryLater, 503),
    (Conflict, 409),
)


def domain_status(exc: DomainError) -> int:
    """The HTTP status of a domain error (the flow itself knows none)."""
    return next((status for kind, status in _DOMAIN_STATUS if isinstance(exc, kind)), 409)


async def domain_error_handler(request: Request, exc: Exception) -> Response:
    """A request that does not fit the participant's (or round's) state: the participant's 4xx page, JSON for /api.

    A fixable ranking page comes back as itself (``exc.view``), with the reason and the choices already made.
    """
    assert isinstance(exc, DomainError)
    status = domain_status(exc)
    headers = {"Cache-Control": "no-store"}
    if isinstance(exc, TryLater):
        headers["Retry-After"] = str(exc.retry_after)
    if _wants_json(request):
        return JSONResponse({"detail": exc.message}, status_code=status, headers=headers)
    templates = request.app.state.templates
    view = getattr(exc, "view", None)
    if view is not None:
        from app.routes.participant import render  # the participant pages' renderer (language included)

        return render(templates, request, view, status)
    code = request.path_params.get("code")
    link = f"/p/{code}" if code and not isinstance(exc, NotFound | Closed) else None
    link_text = "Try again" if isinstance(exc, TryLater) else "Continue where you are"
    context = {"heading": exc.heading, "paragraphs": [exc.message], "link": link, "link_text": link_text}
    return templates.TemplateResponse(request, "participant/message.html", context, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors get their 4xx page; storage failures (database busy or locked, disk full) and unexpected errors
    get a clear page, not a traceback."""
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(DBAPIError, storage_error_handler)
    app.add_exception_handler(OSError, storage_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
