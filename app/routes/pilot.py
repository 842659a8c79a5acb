"""Trying a round as a participant from the console (a *pilot*), and clearing those trial runs.

A pilot participant takes exactly the participant's steps and pages, but is flagged: their pages never count toward
coverage (nor are held from others), they are not in the console's totals, and the exports leave them out unless
asked (``python -m app.export --include-pilot``).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import RedirectResponse

from app import crud
from app.db import write
from app.deps import ClockDep, SessionDep, SettingsDep
from app.identity import PlatformEntry
from app.models import Round
from app.security import ConsoleWriteDep

router = APIRouter(prefix="/console", include_in_schema=False)


@router.post("/rounds/{round_id}/try")
def try_as_participant(
    round_id: str, who: ConsoleWriteDep, session: SessionDep, settings: SettingsDep, clock: ClockDep
) -> RedirectResponse:
    """Start a pilot participant and open their link (in this browser; the console cookie is unaffected)."""
    rnd = session.get(Round, round_id)
    if rnd is None:
        raise HTTPException(status_code=404, detail=f"No round {round_id!r}.")
    person = crud.enter(
        session,
        round_id=rnd.id,
        entry=PlatformEntry("none", None, {}),
        secret=settings.secret_key,
        now=clock(),
        pilot=True,
    )
    with write(session):
        crud.audit(session, at=clock(), actor=who.actor, action="try_as_participant", round_id=rnd.id)
    return RedirectResponse(f"/p/{person.code}", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/rounds/{round_id}/pilot/clear")
def clear_pilot(round_id: str, who: ConsoleWriteDep, session: SessionDep, clock: ClockDep) -> RedirectResponse:
    """Delete every pilot participant of the round with their answers (audited)."""
    if session.get(Round, round_id) is None:
        raise HTTPException(status_code=404, detail=f"No round {round_id!r}.")
    crud.clear_pilot(session, round_id=round_id, actor=who.actor, now=clock())
    return RedirectResponse(f"/console/rounds/{round_id}", status_code=status.HTTP_303_SEE_OTHER)
