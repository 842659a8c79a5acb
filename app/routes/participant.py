"""Participant pages: entry, consent, culture, instructions, ranking pages, completion, blinded images."""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from app import crud
from app.deps import ClockDep, SessionDep, SettingsDep, TemplatesDep
from app.flow import SlotProgress, Step, current_step, progress
from app.identity import EntryError, parse_entry
from app.models import Assignment, Participant, RoundImage
from app.snapshots import get_round, round_design, round_status_and_design
from study_designs.schema import Design

router = APIRouter()
NO_STORE = {"Cache-Control": "no-store"}
COOKIE_PREFIX = "scoft_"


def _html(templates: Jinja2Templates, request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, ctx, status_code=status, headers=NO_STORE)


def _message(
    templates: Jinja2Templates,
    request: Request,
    status: int,
    heading: str,
    *paragraphs: str,
    link: str | None = None,
    link_text: str | None = None,
) -> HTMLResponse:
    return _html(
        templates,
        request,
        "participant/message.html",
        status,
        heading=heading,
        paragraphs=paragraphs,
        link=link,
        link_text=link_text,
    )


def _to(code: str) -> RedirectResponse:
    return RedirectResponse(f"/p/{code}", status_code=303, headers=NO_STORE)


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/s/{round_id}", response_class=HTMLResponse, include_in_schema=False)
def entry(
    round_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    templates: TemplatesDep,
    clock: ClockDep,
) -> Response:
    rnd = get_round(session, round_id)
    if rnd is None:
        return _message(templates, request, 404, "Study not found", "Please check the link you were given.")
    try:
        platform = parse_entry(request.query_params)
    except EntryError as err:
        return _message(
            templates,
            request,
            400,
            "This link is incomplete",
            str(err),
            "Please open the study again from the recruitment platform.",
        )
    if platform.preview:
        return _message(
            templates,
            request,
            200,
            round_design(rnd).title,
            "Accept the task to begin. You will rank groups of images on a few questions.",
        )
    cookie = COOKIE_PREFIX + round_id
    if platform.participant_id is None and (known := request.cookies.get(cookie)):
        person = session.exec(select(Participant).where(Participant.code == known)).first()
        if person is not None and person.round_id == round_id:
            return _to(person.code)
    if platform.participant_id is not None:
        existing = crud.find_participant(session, round_id=round_id, entry=platform, secret=settings.secret_key)
        if existing is not None:
            return _with_cookie(_to(existing.code), cookie, existing.code)
    if rnd.status != "open":
        closed = rnd.status == "closed"
        return _message(
            templates,
            request,
            410 if closed else 503,
            "Not taking participants",
            "This study has closed." if closed else "This study is paused. Please try again later.",
        )
    person = crud.enter(session, round_id=round_id, entry=platform, secret=settings.secret_key, now=clock())
    return _with_cookie(_to(person.code), cookie, person.code)


def _with_cookie(resp: Response, name: str, code: str) -> Response:
    resp.set_cookie(name, code, max_age=60 * 60 * 24 * 30, httponly=True, samesite="lax", path="/s/")
    return resp


def _load(session: Session, code: str) -> tuple[Participant, tuple[str, Design], list[Assignment]] | None:
    """The participant, their round's (status, design) and their slots in order."""
    person = session.exec(select(Participant).where(Participant.code == code)).first()
    if person is None:
        return None
    rnd = round_status_and_design(session, person.round_id)
    assert rnd is not None
    slots = list(
        session.exec(
            select(Assignment).where(Assignment.participant_id == person.id).order_by(col(Assignment.position))
        ).all()
    )
    return person, rnd, slots


def _step(person: Participant, slots: list[Assignment]) -> Step:
    return current_step(person.status, [SlotProgress(s.position, s.submitted_at is not None) for s in slots])


def _unknown(templates: Jinja2Templates, request: Request) -> HTMLResponse:
    return _message(
        templates,
        request,
        404,
        "Link not recognised",
        "This participant link is not valid. Please open the study from the recruitment platform.",
    )


@router.get("/p/{code}", response_class=HTMLResponse, include_in_schema=False)
def show(
    code: str,
    request: Request,
    session: SessionDep,
    templates: TemplatesDep,
    clock: ClockDep,
) -> Response:
    loaded = _load(session, code)
    if loaded is None:
        return _unknown(templates, request)
    person, (round_status, design), slots = loaded
    step = _step(person, slots)
    holds_live_page = any(s.submitted_at is None and s.leased_until > clock() for s in slots)
    if step.name == "page" and round_status == "closed" and not holds_live_page:
        return _message(templates, request, 410, "This study has closed", "Thank you for your interest.")
    if step.name == "page" and any(s.submitted_at is None and s.leased_until <= clock() for s in slots):
        crud.refresh_leases(session, code=code, now=clock())
        person, (round_status, design), slots = _load(session, code) or loaded
    if step.name == "page":
        slot = next(s for s in slots if s.position == step.position)
        if slot.shown_at is None:
            assert slot.id is not None
            crud.mark_shown(session, slot_id=slot.id, now=clock())
        return _render_page(templates, request, session, design, person, slot, slots)
    return _render_step(templates, request, design, person, step, slots)


def _render_step(
    templates: Jinja2Templates,
    request: Request,
    design: Design,
    person: Participant,
    step: Step,
    slots: list[Assignment],
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    common = {"code": person.code, "title": design.title, "error": error}
    if step.name == "consent":
        md = MarkdownIt("commonmark", {"html": False})
        return _html(
            templates,
            request,
            "participant/consent.html",
            status,
            consent_html=md.render(design.consent.text),
            content_warning=design.consent.content_warning,
            **common,
        )
    if step.name == "profile":
        return _html(templates, request, "participant/profile.html", status, cultures=design.cultures, **common)
    if step.name == "instructions":
        return _html(
            templates,
            request,
            "participant/instructions.html",
            status,
            n_pages=len(slots),
            n_items=len(design.models),
            can_skip=any(c.allow_skip for c in design.criteria),
            **common,
        )
    if step.name == "done":
        rec = design.recruitment
        redirect = rec.completion_url if person.platform == "prolific" and rec.completion_url else None
        return _html(
            templates,
            request,
            "participant/done.html",
            status,
            completion_code=rec.completion_code,
            redirect_url=redirect,
            **common,
        )
    if step.name == "ineligible":
        if person.exclusion_reason == "no pages left for this culture":
            text = "Every page for your culture already has enough answers, so there is nothing left to rank."
        else:
            text = "This study is looking for people who identify with one of the listed cultures."
        return _message(
            templates,
            request,
            status,
            "Thank you for your interest",
            text,
            "You do not need to do anything else. If you came from a recruitment platform, please "
            "return the study there without a completion code; you will not be penalised.",
        )
    return _message(templates, request, status, "This session has ended", "Thank you for your time.")


def _render_page(
    templates: Jinja2Templates,
    request: Request,
    session: Session,
    design: Design,
    person: Participant,
    slot: Assignment,
    slots: list[Assignment],
    *,
    error: str | None = None,
    status: int = 200,
    submitted: dict[str, list[str]] | None = None,
) -> HTMLResponse:
    rows = session.exec(
        select(RoundImage).where(RoundImage.round_id == slot.round_id, col(RoundImage.image_id).in_(slot.image_order))
    ).all()
    by_id = {r.image_id: r for r in rows}
    images = [by_id[i] for i in slot.image_order]
    n = len(images)
    page_culture = design.culture(images[0].culture)
    prompt = next(p.text for p in design.prompts if p.id == images[0].prompt_id)
    criteria = []
    for cid in slot.criteria_order:
        c = next(c for c in design.criteria if c.id == cid)
        selected: list[int | None] = [None] * n  # nothing is pre-ranked: None shows the empty "Choose rank"
        if submitted:
            for i in range(n):
                value = (submitted.get(f"rank-{cid}-{i}") or [""])[0]
                selected[i] = int(value) if value in {str(r) for r in range(1, n + 1)} else None
        check_index = slot.image_order.index(slot.check_image_id) if slot.check_criterion == cid else None
        criteria.append(
            {
                "id": c.id,
                "question": c.text_for(page_culture),
                "best_label": c.best_label,
                "worst_label": c.worst_label,
                "show_prompt": c.show_prompt,
                "allow_skip": c.allow_skip,
                "selected": selected,
                "check_index": check_index,
                "skipped": bool(submitted and submitted.get(f"skip-{cid}")),
            }
        )
    done, total = progress([SlotProgress(s.position, s.submitted_at is not None) for s in slots])
    return _html(
        templates,
        request,
        "participant/page.html",
        status,
        code=person.code,
        title=design.title,
        position=slot.position,
        token=slot.token,
        criteria=criteria,
        prompt=prompt,
        images=[{"token": r.token, "width": r.width, "height": r.height} for r in images],
        n_items=n,
        number=done + 1,
        total=total,
        last=done + 1 == total,
        error=error,
    )


async def _form(request: Request) -> dict[str, list[str]]:
    form = await request.form()
    out: dict[str, list[str]] = defaultdict(list)
    for key, value in form.multi_items():
        if isinstance(value, str):
            out[key].append(value)
    return dict(out)


def _flow_error(templates: Jinja2Templates, request: Request, code: str, err: crud.FlowError) -> HTMLResponse:
    link = f"/p/{code}" if err.status != 404 else None
    return _message(
        templates,
        request,
        err.status,
        "We could not save that",
        err.message,
        link=link,
        link_text="Continue where you are",
    )


async def _advance(templates: Jinja2Templates, request: Request, code: str, step: Callable[[], object]) -> Response:
    """Run one onboarding step's write off the event loop, then show whatever step the participant is on now."""
    try:
        await run_in_threadpool(step)
    except crud.FlowError as err:
        return _flow_error(templates, request, code, err)
    return _to(code)


@router.post("/p/{code}/consent", include_in_schema=False)
async def consent(
    code: str,
    request: Request,
    session: SessionDep,
    templates: TemplatesDep,
    clock: ClockDep,
) -> Response:
    form = await _form(request)
    agreed = form.get("agree") == ["yes"]
    return await _advance(
        templates, request, code, lambda: crud.give_consent(session, code=code, agreed=agreed, now=clock())
    )


@router.post("/p/{code}/profile", include_in_schema=False)
async def profile(
    code: str,
    request: Request,
    session: SessionDep,
    templates: TemplatesDep,
    clock: ClockDep,
) -> Response:
    form = await _form(request)
    values = form.get("culture", [])
    if len(values) != 1:
        return _flow_error(templates, request, code, crud.FlowError(400, "Please choose one of the listed options."))
    return await _advance(
        templates, request, code, lambda: crud.choose_culture(session, code=code, culture=values[0], now=clock())
    )


@router.post("/p/{code}/instructions", include_in_schema=False)
async def instructions(
    code: str,
    request: Request,
    session: SessionDep,
    templates: TemplatesDep,
    clock: ClockDep,
) -> Response:
    return await _advance(templates, request, code, lambda: crud.finish_instructions(session, code=code, now=clock()))


@router.post("/p/{code}/page/{position}", include_in_schema=False)
async def submit(
    code: str,
    position: int,
    request: Request,
    session: SessionDep,
    templates: TemplatesDep,
    clock: ClockDep,
) -> Response:
    form = await _form(request)
    tokens = form.get("token", [])
    if len(tokens) != 1:
        return _flow_error(templates, request, code, crud.FlowError(400, "The form is missing its page token."))
    try:
        await run_in_threadpool(
            lambda: crud.submit_page(session, code=code, position=position, token=tokens[0], form=form, now=clock())
        )
    except crud.FlowError as err:
        if err.status == 400:
            message = err.message
            page = await run_in_threadpool(
                lambda: _rerender(templates, request, session, code, position, tokens[0], message, form)
            )
            if page is not None:
                return page
        return _flow_error(templates, request, code, err)
    return _to(code)


def _rerender(
    templates: Jinja2Templates,
    request: Request,
    session: Session,
    code: str,
    position: int,
    token: str,
    message: str,
    form: dict[str, list[str]],
) -> HTMLResponse | None:
    """The same page again with the reason and the participant's choices, for a fixable form (400)."""
    loaded = _load(session, code)
    if loaded is None:
        return None
    person, (_, design), slots = loaded
    slot = next((s for s in slots if s.position == position and s.submitted_at is None), None)
    if slot is None or not secrets.compare_digest(slot.token, token):
        return None
    return _render_page(
        templates, request, session, design, person, slot, slots, error=message, status=400, submitted=form
    )


@router.get("/i/{token}", include_in_schema=False)
def image(token: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    row = session.exec(select(RoundImage.path).where(RoundImage.token == token)).first()
    if row is None:
        return Response("Image not found.", status_code=404, media_type="text/plain")
    path = settings.media_root / row
    if not path.is_file():
        return Response("Image not found.", status_code=404, media_type="text/plain")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=604800, immutable"})
