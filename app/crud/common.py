"""What every writer shares: loading a participant's flow state (under a lock when writing) and the audit log."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, bindparam, or_
from sqlmodel import Session, col, func, select

from app.db import single_read
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
    """One participant as the flow sees them: their row, their round's design and their state.

    ``row`` is the ORM row from ``load()``, which writers change; readers that write only through Core statements
    (``load_current``, ``load(orm=False)``) get a plain ``_PersonRow`` with the same attribute names."""

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
    """What a page view needs, in one unlocked statement (``_current_statement``): the participant with their round
    and, for an active participant, only the page they are on with their progress counts (``State.counts``).
    Other participants' slots are all read (the steps before the pages count them).

    ``Loaded.row`` is then a read-only row with the participant's column names, not an ORM object: a view that
    must write loads again under lock (``load(lock=True)``). The statement runs outside a transaction
    (``app.db.single_read``)."""
    if not well_formed(code):  # a NUL byte or non-ASCII text never reaches the database driver
        raise NotFound("Unknown participant link.")
    found = single_read(session).execute(_current_statement(), {"code": code}).first()
    if found is None:
        raise NotFound("Unknown participant link.")
    row = found._mapping
    person = _PersonRow(*(row[c.key] for c in _PERSON_COLUMNS))
    design = design_by_hash(session, person.round_id, row["design_sha256"])
    if person.status != ParticipantStatus.ACTIVE:
        return _with_slots(session, person, design, row["round_status"], row["secret"])  # type: ignore[arg-type]
    slots: tuple[Slot, ...] = ()
    if row["id_1"] is not None and row["submitted_at"] is None:
        slots = (_slot([row[k] for k in _SLOT_KEYS]),)
    state = State(
        status=ParticipantStatus(person.status),
        round_status=row["round_status"],
        failed_checks=person.failed_checks,
        slots=slots,
        counts=(row["n_done"], row["n_slots"]),
    )
    return Loaded(person, design, state, row["secret"])  # type: ignore[arg-type]


_PERSON_COLUMNS = (
    Participant.id,
    Participant.round_id,
    Participant.code,
    Participant.platform,
    Participant.platform_raw,
    Participant.status,
    Participant.exclusion_reason,
    Participant.failed_checks,
    Participant.culture,
)


class _PersonRow(NamedTuple):
    """The participant's columns a page view reads (``load_current``), under ``Participant``'s attribute names."""

    id: int
    round_id: str
    code: str
    platform: str
    platform_raw: dict
    status: str
    exclusion_reason: str | None
    failed_checks: int
    culture: str | None


_SLOT_KEYS = ("id_1",) + tuple(c.key for c in _SLOT_COLUMNS[1:])


@cache
def _current_statement() -> Select:
    """Participant + round + the first unsubmitted slot (else the first slot) + counts, by link code, built once."""
    mine = Assignment.__table__.alias("mine")  # type: ignore[attr-defined]
    person = Participant.__table__  # type: ignore[attr-defined]
    slot = Assignment.__table__  # type: ignore[attr-defined]
    first_open = (
        select(mine.c.id)
        .where(mine.c.participant_id == person.c.id)
        .order_by(mine.c.submitted_at.is_not(None), mine.c.position)
        .limit(1)
        .scalar_subquery()
    )
    n_slots = select(func.count()).where(mine.c.participant_id == person.c.id).scalar_subquery()
    n_done = select(func.count(mine.c.submitted_at)).where(mine.c.participant_id == person.c.id).scalar_subquery()
    return (
        select(
            *(person.c[c.key] for c in _PERSON_COLUMNS),
            Round.__table__.c.status.label("round_status"),  # type: ignore[attr-defined]
            Round.__table__.c.design_sha256,  # type: ignore[attr-defined]
            Round.__table__.c.secret,  # type: ignore[attr-defined]
            slot.c.id.label("id_1"),
            *(slot.c[c.key] for c in _SLOT_COLUMNS[1:]),
            n_slots.label("n_slots"),
            n_done.label("n_done"),
        )
        .select_from(person)
        .join(Round.__table__, Round.__table__.c.id == person.c.round_id)  # type: ignore[attr-defined]
        .outerjoin(slot, slot.c.id == first_open)
        .where(person.c.code == bindparam("code"))
    )


def load(session: Session, code: str, *, lock: bool = False, orm: bool = True, position: int | None = None) -> Loaded:
    """The participant with this link code (row-locked when ``lock``), their round's design and their slots.

    ``orm=False``: the participant as a plain row (``_PersonRow``) and every read as a Core statement, for a writer
    that writes with Core statements only (a page submission); with ``position``, only the slots a submission of that
    page looks at are read (it, the current page and the one after: whether the page sent is the current one, whether
    it is the last, which page to hold next), with the progress counts (``State.counts``)."""
    if not orm:
        return _load_rows(session, code, lock=lock, position=position)
    row, round_status, sha, round_secret = _participant_and_round(session, code, lock=lock)
    design = design_by_hash(session, row.round_id, sha)
    return _with_slots(session, row, design, round_status, round_secret)


def _load_rows(session: Session, code: str, *, lock: bool, position: int | None) -> Loaded:
    """``load(orm=False)``: participant, round and the slots in one statement (one row per slot)."""
    if not well_formed(code):
        raise NotFound("Unknown participant link.")
    partial = position is not None
    q = _person_and_slots_statement(lock, partial)
    rows = session.connection().execute(q, {"code": code, "pos": position}).all()
    if not rows:
        raise NotFound("Unknown participant link.")
    n = len(_PERSON_COLUMNS)
    first = rows[0]
    person = _PersonRow(*first[:n])
    round_status, sha, secret = first[n : n + 3]
    end = n + 3 + len(_SLOT_COLUMNS)
    slots = tuple(_slot(r[n + 3 : end]) for r in rows if r[n + 3] is not None)
    state = State(
        status=ParticipantStatus(person.status),
        round_status=round_status,
        failed_checks=person.failed_checks,
        slots=slots,
        counts=(first[end + 1], first[end]) if partial else None,
    )
    return Loaded(person, design_by_hash(session, person.round_id, sha), state, secret)  # type: ignore[arg-type]


@cache
def _person_and_slots_statement(lock: bool, partial: bool) -> Select:
    person, rnd, slot = Participant.__table__, Round.__table__, Assignment.__table__  # type: ignore[attr-defined]
    joined = slot.c.participant_id == person.c.id
    counts = []
    if partial:  # the page sent and the first two still to send, and how many there are in all and sent
        mine = slot.alias("mine")
        next_two = (
            select(mine.c.id)
            .where(mine.c.participant_id == person.c.id, mine.c.submitted_at.is_(None))
            .order_by(mine.c.position)
            .limit(2)
        )
        joined = and_(joined, or_(slot.c.position == bindparam("pos"), slot.c.id.in_(next_two)))
        counts = [
            select(func.count()).where(mine.c.participant_id == person.c.id).scalar_subquery(),
            select(func.count(mine.c.submitted_at)).where(mine.c.participant_id == person.c.id).scalar_subquery(),
        ]
    q = (
        select(
            *(person.c[c.key] for c in _PERSON_COLUMNS),
            rnd.c.status,
            rnd.c.design_sha256,
            rnd.c.secret,
            *(slot.c[c.key] for c in _SLOT_COLUMNS),
            *counts,
        )
        .select_from(person)
        .join(rnd, rnd.c.id == person.c.round_id)
        .outerjoin(slot, joined)
        .where(person.c.code == bindparam("code"))
        .order_by(slot.c.position)
    )
    return q.with_for_update(of=person) if lock else q


@cache
def _slots_statement() -> Select:
    slot = Assignment.__table__  # type: ignore[attr-defined]
    return (
        select(*(slot.c[c.key] for c in _SLOT_COLUMNS))
        .where(slot.c.participant_id == bindparam("pid"))
        .order_by(slot.c.position)
    )


def _with_slots(session: Session, row: Participant, design: Design, round_status: str, round_secret: str) -> Loaded:
    rows = session.connection().execute(_slots_statement(), {"pid": row.id}).all()
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
