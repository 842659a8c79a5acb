"""What every writer shares: loading a participant's flow state (under a lock when writing) and the audit log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from app.flow import NotFound, ParticipantStatus, Slot, State
from app.flow.views import Person
from app.models import Assignment, AuditLog, Participant, Round
from app.snapshots import design_by_hash
from study_designs.schema import Design

_OPAQUE = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)


def well_formed(value: str) -> bool:
    """A link code, slot token or round id as this app makes them: 1-64 ASCII letters, digits, '-' or '_'."""
    return isinstance(value, str) and _OPAQUE.fullmatch(value) is not None


def audit(session: Session, *, at: datetime, actor: str, action: str, round_id: str | None, **detail: object) -> None:
    session.add(AuditLog(at=at, actor=actor, action=action, round_id=round_id, detail=dict(detail)))


@dataclass(frozen=True, slots=True)
class Loaded:
    """One participant as the flow sees them: their row, their round's design and their state."""

    row: Participant
    design: Design
    state: State
    assignments: tuple[Assignment, ...]
    round_secret: str = ""

    @property
    def person(self) -> Person:
        raw = self.row.platform_raw or {}
        return Person(
            self.row.code,
            self.row.platform,
            self.row.exclusion_reason,
            assignment_id=raw.get("assignmentId") if self.row.platform == "mturk" else None,
            turk_submit_to=raw.get("turkSubmitTo") if self.row.platform == "mturk" else None,
        )


def to_slot(a: Assignment) -> Slot:
    assert a.id is not None
    return Slot(
        id=a.id,
        position=a.position,
        kind=a.kind,
        page_id=a.page_id,
        token=a.token,
        image_order=tuple(a.image_order),
        criteria_order=tuple(a.criteria_order),
        leased_until=a.leased_until,
        check_criterion=a.check_criterion,
        check_image_id=a.check_image_id,
        shown_at=a.shown_at,
        submitted_at=a.submitted_at,
        payload_sha256=a.payload_sha256,
    )


def load(session: Session, code: str, *, lock: bool = False) -> Loaded:
    """The participant with this link code (row-locked when ``lock``), their round's design and their slots."""
    if not well_formed(code):  # a NUL byte or non-ASCII text never reaches the database driver
        raise NotFound("Unknown participant link.")
    q = (
        select(Participant, Round.status, Round.design_sha256, Round.secret)
        .join(Round, col(Round.id) == Participant.round_id)
        .where(Participant.code == code)
        .execution_options(populate_existing=True)  # the session outlives commits: always read the rows afresh
    )
    if lock:
        q = q.with_for_update(of=Participant)  # type: ignore[arg-type]
    found = session.exec(q).first()
    if found is None:
        raise NotFound("Unknown participant link.")
    row, round_status, sha, round_secret = found
    design = design_by_hash(session, row.round_id, sha)
    assignments = tuple(
        session.exec(
            select(Assignment)
            .where(Assignment.participant_id == row.id)
            .order_by(col(Assignment.position))
            .execution_options(populate_existing=True)
        ).all()
    )
    state = State(
        status=ParticipantStatus(row.status),
        round_status=round_status,
        failed_checks=row.failed_checks,
        slots=tuple(to_slot(a) for a in assignments),
    )
    return Loaded(row, design, state, assignments, round_secret)
