"""What each participant step shows: a view model (template name and the values it needs) built from plain data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt

from app.flow.machine import Slot, State, Step
from app.flow.status import INELIGIBLE_NO_PAGES
from app.flow.submission import DUPLICATE, INVALID
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


@dataclass(frozen=True, slots=True)
class ImageInfo:
    image_id: str
    token: str
    culture: str
    prompt_id: str
    width: int | None = None
    height: int | None = None


def message(heading: str, *paragraphs: str, link: str | None = None, link_text: str | None = None) -> View:
    return View(
        "participant/message.html",
        {"heading": heading, "paragraphs": paragraphs, "link": link, "link_text": link_text},
    )


def step_view(step: Step, *, design: Design, person: Person, state: State, error: str | None = None) -> View:
    """The view of every step but the ranking page (see ``page_view``)."""
    common = {"code": person.code, "title": design.title, "error": error}
    if step.name == "consent":
        md = MarkdownIt("commonmark", {"html": False})
        return View(
            "participant/consent.html",
            common
            | {"consent_html": md.render(design.consent.text), "content_warning": design.consent.content_warning},
        )
    if step.name == "profile":
        return View("participant/profile.html", common | {"cultures": design.cultures})
    if step.name == "instructions":
        return View(
            "participant/instructions.html",
            common
            | {
                "n_pages": len(state.slots),
                "n_items": len(design.models),
                "can_skip": any(c.allow_skip for c in design.criteria),
            },
        )
    if step.name == "done":
        rec = design.recruitment
        redirect = rec.completion_url if person.platform == "prolific" and rec.completion_url else None
        return View(
            "participant/done.html", common | {"completion_code": rec.completion_code, "redirect_url": redirect}
        )
    if step.name == "ineligible":
        if person.exclusion_reason == INELIGIBLE_NO_PAGES:
            text = "Every page for your culture already has enough answers, so there is nothing left to rank."
        else:
            text = "This study is looking for people who identify with one of the listed cultures."
        return message(
            "Thank you for your interest",
            text,
            "You do not need to do anything else. If you came from a recruitment platform, please "
            "return the study there without a completion code; you will not be penalised.",
        )
    return message("This session has ended", "Thank you for your time.")


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
            {
                "id": c.id,
                "question": question,
                "error": field_error,
                "best_label": c.best_label,
                "worst_label": c.worst_label,
                "show_prompt": c.show_prompt,
                "allow_skip": c.allow_skip,
                "selected": selected,
                "check_index": check_index,
                "skipped": bool(submitted and submitted.get(f"skip-{cid}")),
            }
        )
    done, total = state.progress()
    return View(
        "participant/page.html",
        {
            "code": person.code,
            "title": design.title,
            "position": slot.position,
            "token": slot.token,
            "criteria": criteria,
            "prompt": prompt,
            "images": [{"token": r.token} for r in images],
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


def criterion_error(problem: str, question: str, n_items: int, allow_skip: bool) -> str:
    """The error beside one question, quoting the question's own text."""
    if problem == INVALID:
        text = f"Choose a rank from 1 to {n_items} for each image for “{question}”"
    elif problem == DUPLICATE:
        text = f"Use each rank from 1 to {n_items} once for “{question}”"
    else:
        text = f"Rank every image for “{question}”"
    return text + (" or tick “Too distressing to judge”" if allow_skip else "")
