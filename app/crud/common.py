"""What every writer shares: loading a participant's flow state (under a lock when writing) and the audit log."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

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


_SLOT_COLUMNS = (
    Assignment.id,
    Assignment.position,
    Assignment.kind,
    Assignment.page_id,
    Assignment.token,
    Assignment.image_order,
    Assignment.criteria_order,
    Assignment.leased_until,
    Assignment.check_criterion,
    Assignment.check_image_id,
    Assignment.shown_at,
    Assignment.submitted_at,
    Assignment.payload_sha256,
)


def _participant_and_round(session: Session, code: str, *, lock: bool) -> tuple[Participant, str, str, str]:
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
    return found  # type: ignore[return-value]


def load_current(session: Session, code: str) -> Loaded:
    """What a page view needs, unlocked, in two statements: the participant with their round, then, for an active
    participant, only the page they are on with their progress counts (``State.counts``); every slot otherwise
    (the steps before the pages count them)."""
    row, round_status, sha, round_secret = _participant_and_round(session, code, lock=False)
    design = design_by_hash(session, row.round_id, sha)
    if row.status != ParticipantStatus.ACTIVE:
        return _with_slots(session, row, design, round_status, round_secret)
    current = session.exec(
        select(*_SLOT_COLUMNS, func.count().over(), func.count(col(Assignment.submitted_at)).over())
        .where(Assignment.participant_id == row.id)
        .order_by(col(Assignment.submitted_at).is_not(None), col(Assignment.position))
        .limit(1)
    ).first()
    slots: tuple[Slot, ...] = ()
    counts = (0, 0)
    if current is not None:
        *values, total, done = current
        slot = _slot(values)
        slots = () if slot.submitted else (slot,)
        counts = (done, total)
    state = State(
        status=ParticipantStatus(row.status),
        round_status=round_status,
        failed_checks=row.failed_checks,
        slots=slots,
        counts=counts,
    )
    return Loaded(row, design, state, round_secret)


def load(session: Session, code: str, *, lock: bool = False) -> Loaded:
    """The participant with this link code (row-locked when ``lock``), their round's design and their slots."""
    row, round_status, sha, round_secret = _participant_and_round(session, code, lock=lock)
    design = design_by_hash(session, row.round_id, sha)
    return _with_slots(session, row, design, round_status, round_secret)


def _with_slots(session: Session, row: Participant, design: Design, round_status: str, round_secret: str) -> Loaded:
    rows = session.exec(
        select(*_SLOT_COLUMNS).where(Assignment.participant_id == row.id).order_by(col(Assignment.position))
    ).all()
    state = State(
        status=ParticipantStatus(row.status),
        round_status=round_status,
        failed_checks=row.failed_checks,
        slots=tuple(_slot(r) for r in rows),
    )
    return Loaded(row, design, state, round_secret)


def _slot(values: Sequence[Any]) -> Slot:
    """A slot from a row of ``_SLOT_COLUMNS`` (no ORM object: a page view or submission builds none)."""
    return Slot(*values[:5], tuple(values[5]), tuple(values[6]), *values[7:])
