"""JSON API for scripting (``/api``): rounds, status, launch, pause/resume/close, exports; Bearer auth throughout."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from app import console_data, crud, researcher_ops
from app.deps import ClockDep, SessionDep
from app.models import Round
from app.monitor import RoundSummary
from app.recruitment import recruitment_info
from app.security import ResearcherDep, api_researcher
from app.snapshots import round_design

RoundId = Annotated[str, Path(min_length=1, max_length=64, description="Round id, e.g. demo")]


class ErrorOut(BaseModel):
    detail: str


class LaunchProblemsOut(BaseModel):
    detail: str | list[Any]
    problems: list[str] = Field(default_factory=list, description="Every reason the launch was refused.")


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or wrong `Authorization: Bearer <RESEARCHER_TOKEN>`."},
    429: {"model": ErrorOut, "description": "Too many wrong tokens from this address: wait `Retry-After` seconds."},
    404: {"model": ErrorOut, "description": "No such round."},
}
STATE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": ErrorOut, "description": "The round's current status does not allow this change."},
}


router = APIRouter(prefix="/api", tags=["researcher"], dependencies=[Depends(api_researcher)])


class RoundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    design_id: str
    status: str = Field(description="open | paused | closed")
    created_at: datetime
    closed_at: datetime | None
    design_sha256: str
    manifest_sha256: str


class ExitOut(BaseModel):
    kind: str = Field(description="completed | screened_out | declined | full | timed_out")
    code: str | None
    redirect_url: str | None


class RecruitmentOut(BaseModel):
    platform: str
    entry_url: str
    prolific_url: str
    mturk_external_question: str
    completion_code: str
    completion_url: str | None
    lease_minutes: int
    exits: list[ExitOut] = Field(default_factory=list, description="the code and redirect of every way out")


class RoundDetailOut(RoundOut):
    title: str
    cultures: list[str]
    models: list[str]
    criteria: list[str]
    pages: dict[str, int] = Field(description="pages per culture")
    target_rankings_per_page: int
    recruitment: RecruitmentOut


class CoverageCellOut(BaseModel):
    page_id: str
    done: int
    excluded: int
    target: int
    leased: int


class CultureCoverageOut(BaseModel):
    culture: str
    done: int
    excluded: int
    target: int
    leased: int
    pages_complete: int
    pages: list[CoverageCellOut]


class AttentionOut(BaseModel):
    page_id: str
    n: int
    failed: int
    looks_broken: bool


class RoundStatusOut(BaseModel):
    round_id: str
    status: str
    at: datetime
    participants_by_status: dict[str, int]
    participants_total: int
    pages_submitted: int
    regular_pages_submitted: int
    attention_pages_submitted: int
    repeat_pages_submitted: int
    response_rows: int = Field(description="Rows of this round's responses.csv.")
    skipped_judgments: int
    live_leases: int
    median_seconds_per_page: float | None
    coverage_done: int = Field(description="Submitted regular pages (what assignment counts toward the target).")
    coverage_excluded: int = Field(description="Of coverage_done: pages by participants the export marks excluded.")
    coverage_target: int
    flagged: dict[str, int]
    coverage: list[CultureCoverageOut]
    attention_checks: list[AttentionOut]


class LaunchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    round_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    design_path: str | None = Field(
        default=None, min_length=1, max_length=1000, description="Design TOML on the server"
    )
    design_toml: str | None = Field(default=None, max_length=1_000_000, description="or the design TOML itself")
    manifest_path: str | None = Field(
        default=None, min_length=1, max_length=1000, description="manifest.jsonl on the server"
    )
    manifest_jsonl: str | None = Field(default=None, max_length=8_000_000, description="or the manifest itself")
    images_dir: str | None = Field(
        default=None, min_length=1, max_length=1000, description="Folder the manifest's file paths are relative to"
    )


def _round(session: Session, round_id: str) -> Round:
    rnd = session.get(Round, round_id)
    if rnd is None:
        raise HTTPException(status_code=404, detail=f"No round {round_id!r}.")
    return rnd


@router.get("/rounds", response_model=list[RoundOut], responses={401: ERRORS[401]}, summary="List rounds")
def list_rounds(session: SessionDep) -> list[Round]:
    return console_data.list_rounds(session)


@router.get("/rounds/{round_id}", response_model=RoundDetailOut, responses=ERRORS, summary="One round")
def get_round(round_id: RoundId, request: Request, session: SessionDep) -> RoundDetailOut:
    rnd = _round(session, round_id)
    design = round_design(rnd)
    info = recruitment_info(design, base_url=str(request.base_url), round_id=rnd.id)
    return RoundDetailOut(
        **RoundOut.model_validate(rnd).model_dump(),
        title=design.title,
        cultures=[c.id for c in design.cultures],
        models=[m.id for m in design.models],
        criteria=[c.id for c in design.criteria],
        pages={c.id: len(design.pages(c.id)) for c in design.cultures},
        target_rankings_per_page=design.assignment.target_rankings_per_page,
        recruitment=RecruitmentOut(
            platform=info.platform,
            entry_url=info.entry_url,
            prolific_url=info.prolific_url,
            mturk_external_question=info.mturk_external_question,
            completion_code=info.completion_code,
            completion_url=info.completion_url,
            lease_minutes=info.lease_minutes,
            exits=[ExitOut(kind=e.kind, code=e.code, redirect_url=e.redirect_url) for e in info.exits],
        ),
    )


def status_out(rnd: Round, view: console_data.MonitorView, at: datetime) -> RoundStatusOut:
    s: RoundSummary = view.summary
    return RoundStatusOut(
        round_id=rnd.id,
        status=rnd.status,
        at=at,
        participants_by_status=s.participants_by_status,
        participants_total=s.participants_total,
        pages_submitted=s.pages_submitted,
        regular_pages_submitted=s.regular_pages_submitted,
        attention_pages_submitted=s.attention_pages_submitted,
        repeat_pages_submitted=s.repeat_pages_submitted,
        response_rows=s.response_rows,
        skipped_judgments=s.skipped_judgments,
        live_leases=s.live_leases,
        median_seconds_per_page=s.median_seconds_per_page,
        coverage_done=s.coverage_done,
        coverage_excluded=s.coverage_excluded,
        coverage_target=s.coverage_target,
        flagged=s.flagged,
        coverage=[
            CultureCoverageOut(
                culture=c.culture,
                done=c.done,
                excluded=c.excluded,
                target=c.target,
                leased=c.leased,
                pages_complete=c.pages_complete,
                pages=[
                    CoverageCellOut(
                        page_id=x.page_id, done=x.done, excluded=x.excluded, target=x.target, leased=x.leased
                    )
                    for x in c.cells
                ],
            )
            for c in view.coverage
        ],
        attention_checks=[
            AttentionOut(page_id=a.page_id, n=a.n, failed=a.failed, looks_broken=a.looks_broken) for a in view.attention
        ],
    )


@router.get("/rounds/{round_id}/status", response_model=RoundStatusOut, responses=ERRORS, summary="Live status")
def round_status(round_id: RoundId, session: SessionDep, clock: ClockDep) -> RoundStatusOut:
    rnd = _round(session, round_id)
    now = clock()
    view = console_data.monitor_view(console_data.load_round_data(session, rnd), now)
    return status_out(rnd, view, now)


@router.post(
    "/rounds",
    response_model=RoundOut,
    status_code=201,
    responses={
        401: ERRORS[401],
        422: {"model": LaunchProblemsOut, "description": "The design or manifest has problems; all are listed."},
    },
    summary="Launch a round",
)
def launch_round(
    body: LaunchIn, request: Request, who: ResearcherDep, session: SessionDep, clock: ClockDep
) -> Round | JSONResponse:
    req = researcher_ops.LaunchRequest(**body.model_dump())
    try:
        return researcher_ops.launch(session, req, settings=request.app.state.settings, actor=who.actor, now=clock())
    except researcher_ops.LaunchProblems as err:
        body = LaunchProblemsOut(detail=f"launch refused: {len(err.problems)} problem(s)", problems=err.problems)
        return JSONResponse(status_code=422, content=body.model_dump())


def _change(session: Session, round_id: str, action: str, actor: str, now: datetime) -> Round:
    return crud.change_round_status(session, round_id=round_id, action=action, actor=actor, now=now)  # errors: 404/409


@router.post("/rounds/{round_id}/pause", response_model=RoundOut, responses=STATE_ERRORS, summary="Pause entry")
def pause_round(round_id: RoundId, who: ResearcherDep, session: SessionDep, clock: ClockDep) -> Round:
    """No new participants may enter; people already taking part may finish."""
    return _change(session, round_id, "pause", who.actor, clock())


@router.post("/rounds/{round_id}/resume", response_model=RoundOut, responses=STATE_ERRORS, summary="Resume entry")
def resume_round(round_id: RoundId, who: ResearcherDep, session: SessionDep, clock: ClockDep) -> Round:
    return _change(session, round_id, "resume", who.actor, clock())


@router.post("/rounds/{round_id}/close", response_model=RoundOut, responses=STATE_ERRORS, summary="Close for good")
def close_round(round_id: RoundId, who: ResearcherDep, session: SessionDep, clock: ClockDep) -> Round:
    """Final: no new participants and no further submissions."""
    return _change(session, round_id, "close", who.actor, clock())


class ReclaimOut(BaseModel):
    round_id: str
    timed_out: list[str] = Field(
        description="Pseudonyms of the participants timed out; their pages are back in the pool."
    )


@router.post(
    "/rounds/{round_id}/reclaim", response_model=ReclaimOut, responses=ERRORS, summary="Reclaim expired leases"
)
def reclaim_leases(round_id: RoundId, who: ResearcherDep, session: SessionDep, clock: ClockDep) -> ReclaimOut:
    """Time out participants whose every open page lease has expired, so they cannot take those pages back."""
    timed_out = crud.reclaim_expired_leases(session, round_id=round_id, actor=who.actor, now=clock())
    return ReclaimOut(round_id=round_id, timed_out=timed_out)


@router.get(
    "/rounds/{round_id}/export",
    response_class=Response,
    responses={
        **ERRORS,
        200: {
            "description": "responses.csv, participants.csv or approvals.csv (text/csv), the round snapshot "
            "(application/json), or the codebook (text/markdown)",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
                "text/markdown": {"schema": {"type": "string"}},
            },
        },
    },
    summary="Export",
)
def export_round(
    round_id: RoundId,
    who: ResearcherDep,
    session: SessionDep,
    clock: ClockDep,
    kind: Annotated[
        researcher_ops.ExportKind,
        Query(description="responses | participants | approvals (raw ids; audited) | snapshot | codebook"),
    ] = "responses",
) -> Response:
    rnd = _round(session, round_id)
    return researcher_ops.export_response(session, rnd, kind, actor=who.actor, now=clock())
