"""Participant pages: entry, consent, culture, instructions, ranking pages, completion, blinded images.

Each route reads its input, calls one ``crud`` function and renders the view model it returns; every domain error
(unknown link, fixable form, stale page, closed round) becomes a page in ``app.errors``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session, col, select

from app import crud, i18n
from app.blinding import PREVIEW, image_of, split_token
from app.clock import Clock
from app.config import Settings
from app.crud.participants import ENROL_WINDOW_S
from app.db import single_read
from app.deps import ClockDep, DbDep, SettingsDep, TemplatesDep
from app.flow import InvalidInput, NotFound, ParticipantStatus
from app.flow.views import View, message
from app.identity import EntryError, parse_entry
from app.middleware import MTURK_CSP
from app.models import Assignment, Round
from app.ranks import parse_position
from app.ratelimit import Decision, RateLimiter
from app.snapshots import get_round, page_image_ids, round_design, round_images

router = APIRouter()
NO_STORE = {"Cache-Control": "no-store"}
COOKIE_PREFIX = "scoft_"


def _to(code: str) -> RedirectResponse:
    return RedirectResponse(f"/p/{code}", status_code=303, headers=NO_STORE)


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/s/{round_id}", response_class=HTMLResponse, include_in_schema=False)
async def entry(
    round_id: str, request: Request, db: DbDep, settings: SettingsDep, templates: TemplatesDep, clock: ClockDep
) -> Response:
    return await db.run(lambda session: _entry(session, round_id, request, settings, templates, clock))


def _entry(
    session: Session, round_id: str, request: Request, settings: Settings, templates: Jinja2Templates, clock: Clock
) -> Response:
    rnd = current_round(session, round_id)
    try:
        platform = parse_entry(request.query_params)
    except EntryError as err:
        incomplete = message(
            "This link is incomplete", str(err), "Please open the study again from the recruitment platform."
        )
        return render(templates, request, incomplete, 400)
    if platform.preview:
        design = round_design(rnd)
        design = design.localized(i18n.choose(design.languages, wanted(request)))
        view = crud.preview(session, round_id=rnd.id, design=design)
        return render(templates, request, view, platform="mturk")
    cookie = COOKIE_PREFIX + rnd.id
    if platform.participant_id is None and (known := request.cookies.get(cookie)):
        person = crud.by_code(session, known)
        if person is not None and person.round_id == rnd.id:
            return _to(person.code)
    if platform.participant_id is not None:
        existing = crud.find_participant(session, round_id=rnd.id, entry=platform, secret=settings.secret_key)
        if existing is not None:
            return _with_cookie(_to(existing.code), cookie, existing.code)
    elif round_design(rnd).recruitment.platform != "none":  # a researcher previews from the console ("Try")
        incomplete = message(
            "This link is incomplete",
            "This study is run through a recruitment platform, and the link did not carry your participant id.",
            "Please open the study again from the recruitment platform.",
        )
        return render(templates, request, incomplete, 400)
    if rnd.status != "open":
        closed = rnd.status == "closed"
        text = "This study has closed." if closed else "This study is paused. Please try again later."
        return render(templates, request, message("Not taking participants", text), 410 if closed else 503)
    now = clock()
    limiter: RateLimiter = request.app.state.enrol_limiter
    decision = limiter.check(request.client.host if request.client else "unknown", rnd.id)
    if decision.allowed and crud.enrolment_cap_reached(session, rnd.id, settings=settings, now=now):
        decision = Decision(False, ENROL_WINDOW_S)  # the database-wide cap (all workers and hosts together)
    if not decision.allowed:
        busy = message(
            "Too many people are starting at once",
            "Please wait a minute and open your study link again. Nothing has been recorded yet.",
        )
        resp = render(templates, request, busy, 429)
        resp.headers["Retry-After"] = decision.retry_after_header
        return resp
    person = crud.enter(session, round_id=rnd.id, entry=platform, secret=settings.secret_key, now=now, pilot=rnd.pilot)
    return _with_cookie(_to(person.code), cookie, person.code)


def current_participant(session: Session, code: str, *, fast: bool = False) -> crud.Loaded:
    """The participant of the link ``/p/{code}``, their round's design and their state (read, not locked);
    ``fast``: only the page an active participant is on (``crud.load_current``)."""
    try:
        return crud.load_current(session, code) if fast else crud.load(session, code)
    except NotFound:
        raise NotFound(
            "This participant link is not valid. Please open the study from the recruitment platform.",
            heading="Link not recognised",
        ) from None


def current_round(session: Session, round_id: str) -> Round:
    rnd = get_round(session, round_id)
    if rnd is None:
        raise NotFound("Please check the link you were given.", heading="Study not found")
    return rnd


def _with_cookie(resp: Response, name: str, code: str) -> Response:
    resp.set_cookie(name, code, max_age=60 * 60 * 24 * 30, httponly=True, samesite="lax", path="/s/")
    return resp


@router.get("/p/{code}", response_class=HTMLResponse, include_in_schema=False)
async def show(code: str, request: Request, db: DbDep, templates: TemplatesDep, clock: ClockDep) -> HTMLResponse:
    return await db.run(lambda session: _show(session, code, request, templates, clock), retry=True, reads=True)


def _show(session: Session, code: str, request: Request, templates: Jinja2Templates, clock: Clock) -> HTMLResponse:
    current = current_participant(session, code, fast=True)
    lang = i18n.choose(current.design.languages, wanted(request))
    current = replace(current, design=current.design.localized(lang))
    view = crud.show(session, current, now=clock())
    response = render(templates, request, view, platform=current.row.platform)
    if request.query_params.get(i18n.QUERY) == lang:  # the switcher: keep the choice for the pages that follow
        response.set_cookie(i18n.COOKIE, lang, max_age=60 * 60 * 24 * 30, httponly=True, samesite="lax", path="/p/")
    return response


def wanted(request: Request) -> list[str]:
    return i18n.preferences(request.query_params, request.cookies, request.headers.get("accept-language"))


def render(
    templates: Jinja2Templates, request: Request, view: View, status: int = 200, *, platform: str = "none"
) -> HTMLResponse:
    """A view in the participant's language: among the design's languages when the view names them."""
    headers = NO_STORE | ({"Content-Security-Policy": MTURK_CSP} if platform == "mturk" else {})
    available = view.context.get("design_languages") or ["en"]
    lang = i18n.choose(available, wanted(request))
    context = view.context | i18n.template_context(lang, available, request.url.path)
    return templates.TemplateResponse(request, view.template, context, status_code=status, headers=headers)


async def _form(request: Request) -> dict[str, list[str]]:
    form = await request.form()
    out: dict[str, list[str]] = defaultdict(list)
    for key, value in form.multi_items():
        if isinstance(value, str):
            out[key].append(value)
    return dict(out)


def _one(form: dict[str, list[str]], name: str, missing: str) -> str:
    values = form.get(name, [])
    if len(values) != 1:
        raise InvalidInput(missing)
    return values[0]


@router.post("/p/{code}/consent", include_in_schema=False)
async def consent(code: str, request: Request, db: DbDep, clock: ClockDep) -> Response:
    form = await _form(request)
    agreed, declined = form.get("agree") == ["yes"], form.get("decline") == ["yes"]
    langs = wanted(request)
    await db.run(
        lambda session: crud.give_consent(
            session, code=code, agreed=agreed, declined=declined, now=clock(), wanted=langs
        )
    )
    return _to(code)


@router.post("/p/{code}/profile", include_in_schema=False)
async def profile(code: str, request: Request, db: DbDep, clock: ClockDep) -> Response:
    culture = _one(await _form(request), "culture", "Please choose one of the listed options.")
    langs = wanted(request)
    await db.run(lambda session: crud.choose_culture(session, code=code, culture=culture, now=clock(), wanted=langs))
    return _to(code)


@router.post("/p/{code}/instructions", include_in_schema=False)
async def instructions(code: str, request: Request, db: DbDep, clock: ClockDep) -> Response:
    langs = wanted(request)
    await db.run(lambda session: crud.finish_instructions(session, code=code, now=clock(), wanted=langs))
    return _to(code)


@router.get("/p/{code}/return", response_class=HTMLResponse, include_in_schema=False)
async def return_confirm(code: str, request: Request, db: DbDep, templates: TemplatesDep) -> Response:
    """The confirm step of "Stop and return the study"; shows only, changes nothing."""
    current = await db.run(lambda session: current_participant(session, code))
    if not ParticipantStatus(current.row.status).is_live:
        return _to(current.row.code)
    design = current.design.localized(i18n.choose(current.design.languages, wanted(request)))
    view = View(
        "participant/return.html",
        {"code": current.row.code, "title": design.title, "design_languages": design.languages},
    )
    return render(templates, request, view, platform=current.row.platform)


@router.post("/p/{code}/return", include_in_schema=False)
async def return_study(code: str, request: Request, db: DbDep, clock: ClockDep) -> Response:
    """Stop and return the study (POST only, idempotent); then the link shows what to do on the platform."""
    if (await _form(request)).get("confirm") == ["yes"]:
        await db.run(lambda session: crud.return_study(session, code=code, now=clock()))
    return _to(code)


@router.post("/p/{code}/page/{position}", include_in_schema=False)
async def submit(code: str, position: str, request: Request, db: DbDep, clock: ClockDep) -> Response:
    """Store one ranking page, then show whatever comes next (a fixable form comes back with its reason, 400).
    Safe to retry after a lost connection: the page token makes a repeated submission a no-op."""
    page = parse_position(position)
    if page is None:
        raise NotFound("This page is not part of your study.")
    form = await _form(request)
    token = _one(form, "token", "The form is missing its page token.")
    langs = wanted(request)
    await db.run(
        lambda session: crud.submit_page(
            session, code=code, position=page, token=token, form=form, now=clock(), wanted=langs
        ),
        retry=True,
    )
    return _to(code)


@router.get("/i/{token}", include_in_schema=False)
async def image(token: str, db: DbDep, settings: SettingsDep) -> Response:
    """One image of one participant's page slot (``app.blinding``). The headers are the same for every image: no
    file time, no ETag, nothing but the length depends on the file."""
    return await db.run(lambda session: _image(session, token, settings.media_root), retry=True, reads=True)


def _image(session: Session, token: str, media_root: Path) -> Response:
    slot_token = split_token(token)
    found = None
    if slot_token is not None:
        found = (
            single_read(session)
            .execute(
                select(Assignment.round_id, Assignment.image_order, Round.secret)
                .join(Round, col(Round.id) == Assignment.round_id)
                .where(Assignment.token == slot_token)
            )
            .first()
        )
    if found is None and slot_token is not None and slot_token.startswith(PREVIEW):
        found = _preview_images(session, slot_token.removeprefix(PREVIEW))
    image_id = None if found is None else image_of(found[2], token, found[1])
    stored = None if image_id is None else round_images(session, found[0], found[2]).get(image_id)  # type: ignore[index]
    path = None if stored is None else media_root / stored.path
    if path is None or not path.is_file():
        return Response("Image not found.", status_code=404, media_type="text/plain", headers=NO_STORE)
    return Response(path.read_bytes(), media_type="image/png", headers=IMAGE_HEADERS)


def _preview_images(session: Session, round_id: str) -> tuple[str, list[str], str] | None:
    """(round, image ids, secret) of a round's MTurk preview page (its first page), if the round exists."""
    rnd = get_round(session, round_id)
    if rnd is None:
        return None
    first = round_design(rnd).pages()[0]
    return rnd.id, page_image_ids(round_images(session, rnd.id, rnd.secret), first.id), rnd.secret


IMAGE_HEADERS = {"Cache-Control": "private, max-age=604800, immutable"}
