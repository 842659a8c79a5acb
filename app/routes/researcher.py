"""Researcher console (HTML under ``/console``): rounds, launch, live monitor, recruitment, exports, audit (log-in:
``app.routes.login``; trial runs: ``app.routes.pilot``).

Every route except the login form requires the signed session cookie; every POST also requires the CSRF token.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

from app import console_data, crud, researcher_ops
from app.clock import Clock
from app.deps import ClockDep, SessionDep, TemplatesDep
from app.models import Round
from app.recruitment import recruitment_info
from app.security import (
    ConsoleDep,
    ConsoleWriteDep,
    ResearcherSession,
)

router = APIRouter(prefix="/console", include_in_schema=False)

RoundAction = Literal["pause", "resume", "close"]
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
# Body limits above the app-wide one for the two launch routes (a design and a manifest of 1,000+ images).
UPLOAD_LIMITS = {"/console/launch": 2 * MAX_UPLOAD_BYTES + 65_536, "/api/rounds": 2 * MAX_UPLOAD_BYTES + 65_536}


def _render(
    templates: Jinja2Templates,
    request: Request,
    name: str,
    ctx: dict,
    who: ResearcherSession | None,
    status_code: int = 200,
) -> HTMLResponse:
    ctx = {"who": who, "csrf_token": who.csrf_token if who else "", **ctx}
    response = templates.TemplateResponse(request, f"console/{name}", ctx, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def _round_or_404(session: Session, round_id: str) -> Round:
    rnd = session.get(Round, round_id)
    if rnd is None:
        raise HTTPException(status_code=404, detail=f"No round {round_id!r}.")
    return rnd


def _error(templates: Jinja2Templates, request: Request, who: ResearcherSession, code: int, message: str, back: str):
    return _render(templates, request, "error.html", {"message": message, "back": back}, who, status_code=code)


# -- rounds -----------------------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def rounds_list(request: Request, who: ConsoleDep, session: SessionDep, templates: TemplatesDep):
    rounds = console_data.list_rounds(session)
    counts = console_data.participant_counts(session)
    return _render(templates, request, "rounds.html", {"rounds": rounds, "counts": counts}, who)


@router.get("/rounds/{round_id}", response_class=HTMLResponse)
def round_detail(
    request: Request,
    round_id: str,
    who: ConsoleDep,
    session: SessionDep,
    clock: ClockDep,
    templates: TemplatesDep,
    refresh: Annotated[int, Query(ge=0, le=3600)] = 30,
    platform_max_minutes: Annotated[float | None, Query(gt=0, le=10_000)] = None,
):
    rnd = _round_or_404(session, round_id)
    data = console_data.load_round_data(session, rnd)
    view = console_data.monitor_view(data, clock())
    info = recruitment_info(
        data.design,
        base_url=str(request.base_url),
        round_id=rnd.id,
        median_seconds_per_page=view.summary.median_seconds_per_page,
        platform_max_minutes=platform_max_minutes,
    )
    ctx = {
        "round": rnd,
        "design": data.design,
        "view": view,
        "info": info,
        "refresh": refresh if rnd.status != "closed" else 0,
        "platform_max_minutes": platform_max_minutes,
        "audit": console_data.audit_entries(session, round_id=rnd.id, limit=20),
        "now": clock(),
    }
    return _render(templates, request, "round.html", ctx, who)


def _participants_page(
    request: Request,
    rnd: Round,
    who: ResearcherSession,
    session: Session,
    clock: Clock,
    templates: Jinja2Templates,
    lookup: dict | None = None,
) -> HTMLResponse:
    data = console_data.load_round_data(session, rnd)
    view = console_data.monitor_view(data, clock())
    ctx = {"round": rnd, "participants": data.participants, "quality": view.quality, "lookup": lookup}
    return _render(templates, request, "participants.html", ctx, who)


@router.get("/rounds/{round_id}/participants", response_class=HTMLResponse)
def round_participants(
    request: Request, round_id: str, who: ConsoleDep, session: SessionDep, clock: ClockDep, templates: TemplatesDep
):
    return _participants_page(request, _round_or_404(session, round_id), who, session, clock, templates)


@router.post("/rounds/{round_id}/participants/lookup", response_class=HTMLResponse)
def lookup_participant(
    request: Request,
    round_id: str,
    who: ConsoleWriteDep,
    session: SessionDep,
    clock: ClockDep,
    templates: TemplatesDep,
    platform: Annotated[Literal["prolific", "mturk"], Form()] = "prolific",
    platform_id: Annotated[str, Form(max_length=64)] = "",
):
    """Find the pseudonym of a person who asks for their data (by the platform id they give); POST keeps the id
    out of URLs and access logs."""
    rnd = _round_or_404(session, round_id)
    pid = platform_id.strip()
    found = None
    if pid:
        secret = request.app.state.settings.secret_key
        found = console_data.find_by_platform_id(session, round_id=rnd.id, platform=platform, pid=pid, secret=secret)
    lookup = {"platform": platform, "found": found.pseudonym if found else None}
    return _participants_page(request, rnd, who, session, clock, templates, lookup)


@router.post("/rounds/{round_id}/status/{action}")
def round_action(
    request: Request,
    round_id: str,
    action: RoundAction,
    who: ConsoleWriteDep,
    session: SessionDep,
    clock: ClockDep,
    templates: TemplatesDep,
):
    back = f"/console/rounds/{round_id}"
    try:
        crud.change_round_status(session, round_id=round_id, action=action, actor=who.actor, now=clock())
    except crud.RoundNotFound as err:
        return _error(templates, request, who, 404, str(err), "/console")
    except crud.RoundStateError as err:
        return _error(templates, request, who, 409, str(err), back)
    return _see_other(back)


@router.post("/rounds/{round_id}/reclaim")
def reclaim(
    request: Request,
    round_id: str,
    who: ConsoleWriteDep,
    session: SessionDep,
    clock: ClockDep,
    templates: TemplatesDep,
):
    try:
        crud.reclaim_expired_leases(session, round_id=round_id, actor=who.actor, now=clock())
    except crud.RoundNotFound as err:
        return _error(templates, request, who, 404, str(err), "/console")
    return _see_other(f"/console/rounds/{round_id}")


@router.post("/rounds/{round_id}/participants/{pseudonym}/exclude")
def exclude(
    request: Request,
    round_id: str,
    pseudonym: str,
    who: ConsoleWriteDep,
    session: SessionDep,
    clock: ClockDep,
    templates: TemplatesDep,
    reason: Annotated[str, Form(max_length=200)] = "",
):
    back = f"/console/rounds/{round_id}/participants"
    try:
        crud.exclude_participant(
            session, round_id=round_id, pseudonym=pseudonym, reason=reason, actor=who.actor, now=clock()
        )
    except (crud.RoundNotFound, crud.ParticipantNotFound) as err:
        return _error(templates, request, who, 404, str(err), back)
    except crud.RoundStateError as err:
        return _error(templates, request, who, 409, str(err), back)
    except ValueError as err:
        return _error(templates, request, who, 422, str(err), back)
    return _see_other(back)


@router.post("/rounds/{round_id}/participants/{pseudonym}/delete")
def delete_data(
    request: Request,
    round_id: str,
    pseudonym: str,
    who: ConsoleWriteDep,
    session: SessionDep,
    clock: ClockDep,
    templates: TemplatesDep,
    confirm: Annotated[str, Form(max_length=200)] = "",
):
    back = f"/console/rounds/{round_id}/participants"
    if confirm.strip() != pseudonym:
        return _error(templates, request, who, 422, "Type the participant id to confirm the deletion.", back)
    try:
        crud.delete_participant_data(session, round_id=round_id, pseudonym=pseudonym, actor=who.actor, now=clock())
    except (crud.RoundNotFound, crud.ParticipantNotFound) as err:
        return _error(templates, request, who, 404, str(err), back)
    return _see_other(back)


@router.get("/rounds/{round_id}/export/{kind}")
def export(
    round_id: str,
    kind: researcher_ops.ExportKind,
    who: ConsoleDep,
    session: SessionDep,
    clock: ClockDep,
) -> Response:
    rnd = _round_or_404(session, round_id)
    return researcher_ops.export_response(session, rnd, kind, actor=who.actor, now=clock())


# -- launch -----------------------------------------------------------------------------------------------------


@router.get("/launch", response_class=HTMLResponse)
def launch_form(request: Request, who: ConsoleDep, templates: TemplatesDep):
    return _render(templates, request, "launch.html", {"problems": [], "form": {}}, who)


async def _read_upload(upload: UploadFile | None) -> str | None:
    if upload is None or not upload.filename:
        return None
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None


@router.post("/launch", response_class=HTMLResponse)
async def launch(
    request: Request,
    who: ConsoleWriteDep,
    session: SessionDep,
    clock: ClockDep,
    templates: TemplatesDep,
    round_id: Annotated[str, Form(max_length=64)] = "",
    design_path: Annotated[str, Form(max_length=1000)] = "",
    manifest_path: Annotated[str, Form(max_length=1000)] = "",
    images_dir: Annotated[str, Form(max_length=1000)] = "",
    design_file: Annotated[UploadFile | None, File()] = None,
    manifest_file: Annotated[UploadFile | None, File()] = None,
    pilot: Annotated[str, Form(max_length=8)] = "",
):
    form = {
        "round_id": round_id,
        "design_path": design_path,
        "manifest_path": manifest_path,
        "images_dir": images_dir,
        "pilot": pilot == "yes",
    }
    problems: list[str] = []
    design_text = manifest_text = None
    for label, upload in (("design", design_file), ("manifest", manifest_file)):
        try:
            text = await _read_upload(upload)
        except ValueError as err:
            problems.append(f"{researcher_ops.upload_name(label, upload.filename if upload else None)}: {err}")
            continue
        if label == "design":
            design_text = text
        else:
            manifest_text = text
    request_ = researcher_ops.LaunchRequest(
        round_id=round_id.strip(),
        design_path=design_path.strip() or None,
        design_toml=design_text,
        manifest_path=manifest_path.strip() or None,
        manifest_jsonl=manifest_text,
        images_dir=images_dir.strip() or None,
        design_filename=design_file.filename if design_file else None,
        manifest_filename=manifest_file.filename if manifest_file else None,
        pilot=pilot == "yes",
    )
    if not problems:
        try:
            rnd = researcher_ops.launch(
                session, request_, settings=request.app.state.settings, actor=who.actor, now=clock()
            )
        except researcher_ops.LaunchProblems as err:
            problems = list(err.problems)
        else:
            return _see_other(f"/console/rounds/{rnd.id}")
    return _render(templates, request, "launch.html", {"problems": problems, "form": form}, who, status_code=422)


# -- audit log --------------------------------------------------------------------------------------------------


@router.get("/audit", response_class=HTMLResponse)
def audit_log(
    request: Request,
    who: ConsoleDep,
    session: SessionDep,
    templates: TemplatesDep,
    round_id: Annotated[str | None, Query(max_length=64)] = None,
):
    entries = console_data.audit_entries(session, round_id=round_id or None, limit=500)
    return _render(templates, request, "audit.html", {"entries": entries, "round_id": round_id}, who)
