"""Previewing a ranking page from the console exactly as a participant sees it, in any initial image order.

The page is built by the participant's own view model (``app.flow.views.page_view``) and template, but nothing is
stored, the form posts nowhere, and the images come from a researcher-only route (no participant tokens exist).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, select

from app import i18n
from app.deps import ClockDep, SessionDep, SettingsDep, TemplatesDep
from app.flow.machine import Slot, State
from app.flow.status import ParticipantStatus
from app.flow.views import ImageInfo, Person, page_view
from app.models import Round, RoundImage
from app.security import ConsoleDep
from app.snapshots import round_design

router = APIRouter(prefix="/console", include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


def nth_order(items: Sequence[str], n: int) -> tuple[str, ...]:
    """The ``n``-th of the ``len(items)!`` orders of ``items`` (lexicographic in their positions; 0 = as given)."""
    pool, out = list(items), []
    for k in range(len(pool), 0, -1):
        idx, n = divmod(n, math.factorial(k - 1))
        out.append(pool.pop(idx))
    return tuple(out)


def _round_or_404(session: Session, round_id: str) -> Round:
    rnd = session.get(Round, round_id)
    if rnd is None:
        raise HTTPException(status_code=404, detail=f"No round {round_id!r}.")
    return rnd


@router.get("/rounds/{round_id}/preview", response_class=HTMLResponse)
def preview_page(
    request: Request,
    round_id: str,
    who: ConsoleDep,
    session: SessionDep,
    clock: ClockDep,
    templates: TemplatesDep,
    page: Annotated[str | None, Query(max_length=160)] = None,
    order: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    """One page of the round in initial image order ``order`` (an index into the orders of the design's models)."""
    rnd = _round_or_404(session, round_id)
    design = round_design(rnd)
    pages = design.pages()
    page_id = page if page is not None else pages[0].id
    rows = session.exec(select(RoundImage).where(RoundImage.round_id == rnd.id, RoundImage.page_id == page_id)).all()
    by_model = {r.model_id: r for r in rows}
    models = [m.id for m in design.models]
    if not rows or set(by_model) != set(models):
        raise HTTPException(status_code=404, detail=f"No page {page_id!r} in round {rnd.id!r}.")
    n_orders = math.factorial(len(models))
    if order >= n_orders:
        raise HTTPException(status_code=404, detail=f"Order must be below {n_orders} ({len(models)} models).")
    shown = [by_model[m] for m in nth_order(models, order)]
    images = [ImageInfo(str(r.id), str(r.id), r.culture, r.prompt_id, r.width, r.height) for r in shown]
    slot = Slot(
        id=0,
        position=0,
        kind="regular",
        page_id=page_id,
        token="",
        image_order=tuple(r.image_id for r in shown),
        criteria_order=tuple(c.id for c in design.criteria),
        leased_until=clock(),
    )
    state = State(status=ParticipantStatus.ACTIVE, round_status=rnd.status, slots=(slot,))
    view = page_view(slot, images, design=design, person=Person(code="", platform="none"), state=state)
    lang = design.languages[0]
    context = view.context | i18n.template_context(lang, [lang], request.url.path)
    context |= {
        "preview": True,
        "image_base": f"/console/rounds/{rnd.id}/preview-image/",
        "round": rnd,
        "who": who,
        "page_id": page_id,
        "pages": [p.id for p in pages],
        "order": order,
        "n_orders": n_orders,
        "positions": [(i + 1, r.model_id, r.image_id) for i, r in enumerate(shown)],
        "shuffle": random.randrange(n_orders),  # noqa: S311 - only picks which order to show next
    }
    return templates.TemplateResponse(request, "console/preview.html", context, headers=NO_STORE)


@router.get("/rounds/{round_id}/preview-image/{image_row}")
def preview_image(round_id: str, image_row: str, who: ConsoleDep, session: SessionDep, settings: SettingsDep):
    """One image of the round for the preview, by its row number (researcher-only; never a participant's token)."""
    row = session.get(RoundImage, int(image_row)) if image_row.isdigit() and len(image_row) < 19 else None
    path = None if row is None or row.round_id != round_id else settings.media_root / row.path
    if path is None or not path.is_file():
        return Response("Image not found.", status_code=404, media_type="text/plain", headers=NO_STORE)
    return Response(path.read_bytes(), media_type="image/png", headers=NO_STORE)
