"""What each participant step shows: a view model (template name and the values it needs) built from plain data."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from markdown_it import MarkdownIt

from app.flow.exits import ExitInfo, exit_for, mturk_submit_url
from app.flow.machine import Slot, State, Step
from app.flow.status import INELIGIBLE_CULTURE, INELIGIBLE_DECLINED, INELIGIBLE_NO_PAGES, ParticipantStatus
from app.flow.submission import DUPLICATE, INVALID
from app.i18n import N_, Message
from study_designs.schema import Design


@dataclass(frozen=True, slots=True)
class View:
    template: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Person:
    """The participant as the pages see them."""

    code: str
    platform: str
    exclusion_reason: str | None = None
    assignment_id: str | None = None  # MTurk: the assignment the done page submits
    turk_submit_to: str | None = None  # MTurk: the live or sandbox site the worker came from (checked at entry)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    image_id: str
    token: str
    culture: str
    prompt_id: str
    width: int | None = None
    height: int | None = None


def minutes(judgments: int, design: Design) -> int:
    """Expected minutes for ``judgments`` rankings (one criterion of one page each), rounded up."""
    return max(1, math.ceil(judgments * design.quality.seconds_per_judgment / 60))


def render_markdown(text: str) -> str:
    """Participant-facing markdown: no raw HTML (shown as text) and no images (nothing loads from elsewhere);
    links keep markdown-it's check, which refuses ``javascript:``, ``vbscript:`` and ``data:`` targets."""
    md = MarkdownIt("commonmark", {"html": False})
    md.add_render_rule("image", _image_as_text)
    return md.render(text)


def _image_as_text(self: Any, tokens: Sequence[Any], idx: int, options: Any, env: Any) -> str:
    """An image in participant markdown is shown as its alt text: no request leaves for its address."""
    return escape(tokens[idx].content)


def message(
    heading: str,
    *paragraphs: str,
    link: str | None = None,
    link_text: str | None = None,
    languages: Sequence[str] = ("en",),
) -> View:
    """A page of text; the template translates each piece the catalogs know (see ``app.i18n.N_``)."""
    return View(
        "participant/message.html",
        {
            "heading": heading,
            "paragraphs": paragraphs,
            "link": link,
            "link_text": link_text,
            "design_languages": list(languages),
        },
    )


def step_view(step: Step, *, design: Design, person: Person, state: State, error: str | None = None) -> View:
    """The view of every step but the ranking page (see ``page_view``)."""
    common = {"code": person.code, "title": design.title, "error": error, "design_languages": design.languages}
    if step.name == "consent":
        return View(
            "participant/consent.html",
            common
            | {
                "consent_html": render_markdown(design.consent.text),
                "content_warning": design.consent.content_warning,
                "n_pages": sum(design.pages_served()),
                "minutes": design.expected_minutes(),
            },
        )
    if step.name == "profile":
        return View("participant/profile.html", common | {"cultures": design.cultures})
    if step.name == "instructions":
        return View(
            "participant/instructions.html",
            common
            | {
                "n_pages": len(state.slots),
                "n_checks": sum(s.kind == "attention" for s in state.slots),
                "n_repeats": sum(s.kind == "repeat" for s in state.slots),
                "n_criteria": len(design.criteria),
                "minutes": minutes(sum(len(s.criteria_order) for s in state.slots), design),
                "n_items": len(design.models),
                "can_skip": any(c.allow_skip for c in design.criteria),
            },
        )
    if step.name == "done":
        ex = exit_for(design.recruitment, "completed", person.platform)
        submit = mturk_submit_url(person.turk_submit_to) if person.assignment_id else None
        return View(
            "participant/done.html",
            common
            | {
                "completion_code": ex.code,
                "redirect_url": ex.redirect_url,
                "mturk_submit_url": submit,
                "assignment_id": person.assignment_id if submit else None,
            },
        )
    if step.name == "ineligible":
        return exit_view(_INELIGIBLE_EXIT.get(person.exclusion_reason or "", "screened_out"), design, person)
    if state.status == ParticipantStatus.TIMED_OUT:
        return exit_view("timed_out", design, person)
    if state.status == ParticipantStatus.RETURNED:
        return exit_view("returned", design, person)
    return message(N_("This session has ended"), N_("Thank you for your time."), languages=design.languages)


_INELIGIBLE_EXIT = {INELIGIBLE_CULTURE: "screened_out", INELIGIBLE_NO_PAGES: "full", INELIGIBLE_DECLINED: "declined"}
_EXIT_TEXT = {
    "screened_out": (
        N_("Thank you for your interest"),
        N_("This study is looking for people who identify with one of the listed cultures."),
    ),
    "full": (
        N_("Thank you for your interest"),
        N_("Every page for your culture already has enough answers, so there is nothing left to rank."),
    ),
    "declined": (
        N_("You have left the study"),
        N_("You did not agree to take part, so nothing more will be asked of you."),
    ),
    "returned": (
        "You have stopped the study",
        "You chose to stop, so nothing more will be asked of you. The pages you finished are saved.",
    ),
    "timed_out": (
        N_("Your time ran out"),
        N_(
            "The time to finish this study has passed, so your remaining pages were given to others. "
            "The pages you finished are saved."
        ),
    ),
}


def exit_view(kind: str, design: Design, person: Person) -> View:
    """An early exit: what happened, the design's code for it, and (Prolific) the redirect that records it."""
    # a returned study has no code of its own: the participant returns it on the platform
    ex: ExitInfo = (
        ExitInfo(kind, None, None) if kind == "returned" else exit_for(design.recruitment, kind, person.platform)
    )
    heading, text = _EXIT_TEXT[kind]
    if ex.code:
        todo = N_("Please enter this code on the recruitment platform so your submission is recorded correctly.")
    elif person.platform == "mturk":
        todo = N_("Please return the HIT on Mechanical Turk; you will not be penalised.")
    elif person.platform == "prolific":
        todo = N_("Please return the study on Prolific without a completion code; you will not be penalised.")
    else:
        todo = N_("You do not need to do anything else.")
    return View(
        "participant/exit.html",
        {
            "title": design.title,
            "design_languages": design.languages,
            "heading": heading,
            "text": text,
            "todo": todo,
            "exit_code": ex.code,
            "redirect_url": ex.redirect_url,
            "kind": kind,
        },
    )


def preview_view(design: Design, images: Sequence[ImageInfo], *, n_pages: int) -> View:
    """What an MTurk worker sees before accepting: the real instructions and one example page, with no form."""
    prompt = next((p.text for p in design.prompts if images and p.id == images[0].prompt_id), "")
    culture = design.culture(images[0].culture) if images else design.cultures[0]
    criteria = [
        {
            "question": c.text_for(culture),
            "best_label": c.best_label,
            "worst_label": c.worst_label,
            "show_prompt": c.show_prompt,
        }
        for c in design.criteria
    ]
    example = {
        "prompt": prompt,
        "prompt_langs": prompt_languages(design, images[0].prompt_id) if images else [],
        "criteria": criteria,
        "images": [{"token": i.token, "width": i.width, "height": i.height} for i in images],
    }
    return View(
        "participant/instructions.html",
        {
            "code": "",
            "title": design.title,
            "design_languages": design.languages,
            "n_pages": n_pages,
            "minutes": design.expected_minutes(),
            "n_items": len(design.models),
            "can_skip": any(c.allow_skip for c in design.criteria),
            "preview": True,
            "example": example,
        },
    )


def prompt_languages(design: Design, prompt_id: str) -> list[str]:
    """The languages a prompt is written in: the design's own, and those that translate it (elsewhere the page shows
    the design's own text, marked with its ``lang``)."""
    return design.languages[:1] + [lang for lang, tr in design.translations.items() if prompt_id in tr.prompts]


@dataclass(frozen=True, slots=True)
class TileImage:
    """What a ranking page's template knows of an image: its token (no image id, no model)."""

    token: str


@dataclass(frozen=True, slots=True)
class CriterionView:
    """One question of a ranking page as its template reads it (attributes, not dict keys: Jinja tries an
    attribute first, so a dict costs a failed lookup on every use)."""

    id: str
    question: str
    error: str | None
    best_label: str
    worst_label: str
    show_prompt: bool
    allow_skip: bool
    selected: list[int | None]
    check_index: int | None
    skipped: bool


def page_view(
    slot: Slot,
    images: Sequence[ImageInfo],
    *,
    design: Design,
    person: Person,
    state: State,
    error: str | None = None,
    submitted: Mapping[str, Sequence[str]] | None = None,
    problems: Mapping[str, str] | None = None,
) -> View:
    """A ranking page (``images`` in the slot's order); after a fixable error, with the participant's choices.

    ``problems`` (criterion -> what is wrong, from ``IncompleteAnswers``) becomes an error beside each question that
    quotes its text, and the same lines in the summary at the top (``errors``), in page order.
    """
    n = len(images)
    problems = problems or {}
    errors = []
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
        question = c.text_for(page_culture)
        problem = problems.get(cid)
        field_error = None if problem is None else criterion_error(problem, question, n, c.allow_skip)
        if field_error is not None:
            errors.append({"criterion_id": c.id, "message": field_error})
        criteria.append(
            CriterionView(
                id=c.id,
                question=question,
                error=field_error,
                best_label=c.best_label,
                worst_label=c.worst_label,
                show_prompt=c.show_prompt,
                allow_skip=c.allow_skip,
                selected=selected,
                check_index=check_index,
                skipped=bool(submitted and submitted.get(f"skip-{cid}")),
            )
        )
    done, total = state.progress()
    return View(
        "participant/page.html",
        {
            "code": person.code,
            "title": design.title,
            "design_languages": design.languages,
            "position": slot.position,
            "token": slot.token,
            "criteria": criteria,
            "prompt": prompt,
            "prompt_langs": prompt_languages(design, images[0].prompt_id),
            "images": [TileImage(r.token) for r in images],  # only the tokens reach the template
            # every image of a page has one size (launch refuses others), so the page's size says nothing per image
            "page_width": images[0].width,
            "page_height": images[0].height,
            "errors": errors,
            "n_items": n,
            "number": done + 1,
            "total": total,
            "last": done + 1 == total,
            "error": None if errors else error,
        },
    )


_CRITERION_ERRORS = {
    (INVALID, False): N_("Choose a rank from 1 to %(n)s for each image for “%(question)s”"),
    (INVALID, True): N_(
        "Choose a rank from 1 to %(n)s for each image for “%(question)s” or tick “Too distressing to judge”"
    ),
    (DUPLICATE, False): N_("Use each rank from 1 to %(n)s once for “%(question)s”"),
    (DUPLICATE, True): N_("Use each rank from 1 to %(n)s once for “%(question)s” or tick “Too distressing to judge”"),
    ("", False): N_("Rank every image for “%(question)s”"),
    ("", True): N_("Rank every image for “%(question)s” or tick “Too distressing to judge”"),
}


def criterion_error(problem: str, question: str, n_items: int, allow_skip: bool) -> Message:
    """The error beside one question, quoting the question's own text (in the page's language)."""
    kind = problem if problem in (INVALID, DUPLICATE) else ""
    return Message(_CRITERION_ERRORS[kind, allow_skip], n=n_items, question=question)
