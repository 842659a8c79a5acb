"""A participant's requests: load under lock → ``flow.apply`` → write the outcome's rows, one transaction each.

Enrolment locks the culture's ``RoundPage`` rows (``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite the write
transaction starts with ``BEGIN IMMEDIATE``), so concurrent workers and hosts never hand out a page beyond its target.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import TextClause, bindparam, insert, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from app.config import Settings
from app.crud.common import Loaded, audit, load
from app.crud.leases import assign_pages, image_infos, lease_if_room, preview_infos, refresh_leases
from app.db import is_sqlite, single_write, write
from app.flow import InvalidInput, ParticipantStatus, apply
from app.flow.machine import (
    Assigned,
    ChooseCulture,
    Consent,
    FinishInstructions,
    Moved,
    Replayed,
    ReturnStudy,
    Show,
    Stored,
    Submit,
)
from app.flow.views import View, page_view, preview_view, step_view
from app.i18n import choose as choose_language
from app.identity import PlatformEntry, identity_key, platform_key, pseudonym
from app.models import Assignment, Participant, Ranking, RankingSkip, Round
from app.snapshots import page_image_ids, round_images
from study_designs.schema import Design


class InvalidPage(InvalidInput):
    """A ranking page's form that can be fixed: ``view`` is the same page with the reason and the choices made."""

    def __init__(self, message: str, view: View) -> None:
        super().__init__(message)
        self.view = view


# -- entry ------------------------------------------------------------------------------------------------------


def by_code(session: Session, code: str) -> Participant | None:
    return session.exec(select(Participant).where(Participant.code == code)).first()


def find_participant(session: Session, *, round_id: str, entry: PlatformEntry, secret: str) -> Participant | None:
    """The participant who entered this round before with the same platform id, if any."""
    if entry.participant_id is None:
        return None
    return _by_key(session, round_id, platform_key(secret, round_id, entry.platform, identity_key(entry)))


def enter(
    session: Session, *, round_id: str, entry: PlatformEntry, secret: str, now: datetime, pilot: bool = False
) -> Participant:
    """Find the participant with this platform id in the round, or enrol a new one (random id for ``none``).

    ``pilot``: a researcher trying the round; they take the same steps but never count toward coverage, the
    console's totals or (unless asked for) the exports."""
    pid = identity_key(entry) if entry.participant_id is not None else secrets.token_hex(16)
    key = platform_key(secret, round_id, entry.platform, pid)
    if entry.participant_id is not None:
        found = _by_key(session, round_id, key)
        if found is not None:
            with write(session):
                found.last_seen_at = now
                session.add(found)
            return found
    try:
        with write(session):
            person = Participant(
                round_id=round_id,
                code=secrets.token_urlsafe(24),
                platform=entry.platform,
                platform_key=key,
                platform_raw=entry.raw,
                pseudonym=pseudonym(secret, round_id, entry.platform, pid),
                status=ParticipantStatus.CONSENT.value,
                created_at=now,
                last_seen_at=now,
                pilot=pilot,
            )
            session.add(person)
        return person
    except IntegrityError:  # the same platform id entered twice at once: the other request created it
        found = _by_key(session, round_id, key)
        if found is None:
            raise
        return found


ENROL_WINDOW_S = 60


def enrolment_cap_reached(session: Session, round_id: str, *, settings: Settings, now: datetime) -> bool:
    """Whether the round took ``enrol_burst_per_round`` new participants in the last minute, counted in the database,
    so the cap holds for all workers and hosts together (the in-process limiter is per worker)."""
    if settings.enrol_rate_per_round == 0:
        return False
    since = now - timedelta(seconds=ENROL_WINDOW_S)
    recent = session.exec(
        select(func.count())
        .select_from(Participant)
        .where(Participant.round_id == round_id, col(Participant.created_at) > since)
    ).one()
    return recent >= settings.enrol_burst_per_round


def _by_key(session: Session, round_id: str, key: str) -> Participant | None:
    return session.exec(
        select(Participant).where(Participant.round_id == round_id, Participant.platform_key == key)
    ).first()


def preview(session: Session, *, round_id: str, design: Design) -> View:
    """The MTurk preview: instructions and the round's first page as an example, in a random order; reads only."""
    secret = session.exec(select(Round.secret).where(Round.id == round_id)).one()
    ids = page_image_ids(round_images(session, round_id, secret), design.pages()[0].id)
    secrets.SystemRandom().shuffle(ids)
    images = preview_infos(session, round_id, secret, tuple(ids))
    q = design.quality
    return preview_view(
        design, images, n_pages=design.assignment.pages_per_participant + q.attention_checks + q.repeat_pages
    )


# -- the steps before the pages ---------------------------------------------------------------------------------


def _language(loaded: Loaded, wanted: Sequence[str]) -> str:
    """The language the participant is answering in: the first of ``wanted`` the design offers."""
    return choose_language(loaded.design.languages, wanted)


def _move(session: Session, loaded: Loaded, moved: Moved, now: datetime, wanted: Sequence[str] = ()) -> Participant:
    row = loaded.row
    row.language = _language(loaded, wanted)
    if moved.status == ParticipantStatus.PROFILE and row.status == ParticipantStatus.CONSENT:
        row.consented_at = now
    row.status = moved.status.value
    if moved.reason is not None:
        row.exclusion_reason = moved.reason
    row.last_seen_at = now
    session.add(row)
    return row


def give_consent(
    session: Session, *, code: str, agreed: bool, now: datetime, declined: bool = False, wanted: Sequence[str] = ()
) -> Participant:
    with write(session):
        loaded = load(session, code, lock=True)
        moved = apply(loaded.state, Consent(agreed, declined=declined))
        if moved.status != loaded.state.status and moved.reason is not None:  # type: ignore[union-attr]
            audit(
                session,
                at=now,
                actor="participant",
                action="declined consent",
                round_id=loaded.row.round_id,
                participant=loaded.row.id,
            )
        return _move(session, loaded, moved, now, wanted)  # type: ignore[arg-type]


def finish_instructions(session: Session, *, code: str, now: datetime, wanted: Sequence[str] = ()) -> Participant:
    with write(session):
        loaded = load(session, code, lock=True)
        return _move(session, loaded, apply(loaded.state, FinishInstructions()), now, wanted)  # type: ignore[arg-type]


def choose_culture(
    session: Session, *, code: str, culture: str, now: datetime, wanted: Sequence[str] = ()
) -> Participant:
    """Record the self-selected culture and store the participant's pages (assignment happens here, once)."""
    with write(session):
        loaded = load(session, code, lock=True)
        moved = apply(loaded.state, ChooseCulture(culture, loaded.design))
        assert isinstance(moved, Moved)
        if moved.status == loaded.state.status and moved.assign_culture is None:
            return loaded.row  # a repeated or stale form: the culture was already chosen
        row = loaded.row
        if moved.assign_culture is not None:
            row.culture = culture
            slots = assign_pages(
                session, design=loaded.design, person=row, culture=culture, now=now, secret=loaded.round_secret
            )
            moved = apply(loaded.state, Assigned(len(slots)))  # type: ignore[assignment]
            audit(
                session,
                at=now,
                actor="participant",
                action="enrol",
                round_id=row.round_id,
                participant=row.id,
                culture=culture,
                pages=len(slots),
            )
        return _move(session, loaded, moved, now, wanted)


def return_study(session: Session, *, code: str, now: datetime) -> Participant:
    """The participant stops and returns the study: status ``returned``, their held page lease freed (so the page
    goes back to the pool at once), the pages they sent kept. Repeating it changes nothing. Audited."""
    with write(session):
        loaded = load(session, code, lock=True)
        moved = apply(loaded.state, ReturnStudy())
        assert isinstance(moved, Moved)
        if moved.status == loaded.state.status:
            return loaded.row
        session.exec(
            update(Assignment)
            .where(
                col(Assignment.participant_id) == loaded.row.id,
                col(Assignment.submitted_at).is_(None),
                col(Assignment.leased_until) > now,
            )
            .values(leased_until=now)
            .execution_options(synchronize_session=False)
        )
        audit(
            session,
            at=now,
            actor="participant",
            action="returned",
            round_id=loaded.row.round_id,
            participant=loaded.row.id,
        )
        return _move(session, loaded, moved, now)


# -- pages ------------------------------------------------------------------------------------------------------


def show(session: Session, loaded: Loaded, *, now: datetime) -> View:
    """What the participant's link shows now. Renews expired leases first, and stamps a page when first shown."""
    showing = apply(loaded.state, Show(now))
    if showing.refresh_leases:  # type: ignore[union-attr]
        with write(session):
            loaded = refresh_leases(session, load(session, loaded.row.code, lock=True), now=now)
        showing = apply(loaded.state, Show(now))
    step = showing.step  # type: ignore[union-attr]
    if step.name != "page":
        return step_view(step, design=loaded.design, person=loaded.person, state=loaded.state)
    slot = loaded.state.slot_at(step.position)  # type: ignore[arg-type]
    assert slot is not None
    images = image_infos(session, loaded, slot)
    if showing.mark_shown is not None:  # type: ignore[union-attr]
        # the first view's stamp is one conditional statement, atomic by itself: no transaction around it
        single_write(session, _page_statements().shown, {"slot_id": slot.id, "now": now})
    return page_view(slot, images, design=loaded.design, person=loaded.person, state=loaded.state)


@cache
def _page_statements() -> SimpleNamespace:
    """The writes of a page view and a submission as Core statements on the tables, built once per process with bound
    parameters (no ORM bulk machinery, and the compiled form is reused)."""
    slot, person = Assignment.__table__, Participant.__table__  # type: ignore[attr-defined]

    def b(name: str, column: Any = None) -> Any:  # typed as the column, so datetimes go in as naive UTC
        return bindparam(name) if column is None else bindparam(name, type_=column.type)

    return SimpleNamespace(
        rankings=insert(Ranking.__table__),  # type: ignore[attr-defined]
        skips=insert(RankingSkip.__table__),  # type: ignore[attr-defined]
        mark=update(slot)
        .where(slot.c.id == b("slot_id"))
        .values(
            submitted_at=b("now", slot.c.submitted_at),
            payload_sha256=b("digest"),
            seconds_on_page=b("seconds"),
            attention_passed=b("passed"),
            late=b("late"),
        ),
        person=update(person)
        .where(person.c.id == b("pid"))
        .values(
            last_seen_at=b("now", person.c.last_seen_at),
            failed_checks=b("failed_checks"),
            status=b("status"),
            completed_at=b("completed_at", person.c.completed_at),
            language=b("language"),
        ),
        shown=update(slot)
        .where(slot.c.id == b("slot_id"), slot.c.shown_at.is_(None))
        .values(shown_at=b("now", slot.c.shown_at)),
        store_pg=_store_statement_pg(),
    )


_RANKING_COLUMNS = ("criterion", "image_id", "rank", "initial_position", "moved")


def _store_statement_pg() -> TextClause:
    """PostgreSQL: a page's rankings and skips (``unnest`` of one array per column), its slot's mark, the
    participant's update and the lock on the next page's ``RoundPage`` row (``:p_page``; NULL: none) in one
    statement, sent once instead of 20 executions. The lock is a plain ``SELECT`` in ``WITH``, which runs only as far
    as the main statement reads it: the main statement reads its count, so it always runs."""
    slot, person = Assignment.__table__, Participant.__table__  # type: ignore[attr-defined]
    return text(
        """
        WITH rankings AS (
            INSERT INTO ranking (slot_id, criterion, image_id, rank, initial_position, moved)
            SELECT :slot_id, * FROM unnest(
                CAST(:criterion AS VARCHAR[]), CAST(:image_id AS VARCHAR[]), CAST(:rank AS INTEGER[]),
                CAST(:initial_position AS INTEGER[]), CAST(:moved AS BOOLEAN[]))
        ), skips AS (
            INSERT INTO rankingskip (slot_id, criterion) SELECT :slot_id, unnest(CAST(:skipped AS VARCHAR[]))
        ), slot AS (
            UPDATE assignment SET submitted_at = :now, payload_sha256 = :digest, seconds_on_page = :seconds,
                attention_passed = :passed, late = :late
            WHERE id = :slot_id
        ), page AS (
            SELECT page_id FROM roundpage WHERE round_id = :p_round AND page_id = :p_page FOR UPDATE
        )
        UPDATE participant SET last_seen_at = :now, failed_checks = :failed_checks, status = :status,
            completed_at = :completed_at, language = :language
        FROM (SELECT count(*) FROM page) AS locked
        WHERE participant.id = :pid
        """
    ).bindparams(
        bindparam("now", type_=slot.c.submitted_at.type),
        bindparam("completed_at", type_=person.c.completed_at.type),
    )


def submit_page(
    session: Session,
    *,
    code: str,
    position: int,
    token: str,
    form: Mapping[str, Sequence[str]],
    now: datetime,
    wanted: Sequence[str] = (),
) -> Stored | Replayed:
    """Validate and store one page. An identical retry is a no-op; a different resubmission is a conflict.

    The page is stored, and the next page held when it has room, in one transaction. When others filled the next
    page meanwhile, a second transaction swaps or drops it (``refresh_leases``, which locks the culture's pages in
    order) after the first has committed, so no transaction ever holds one page's lock while waiting for the others;
    should it fail, the next page view renews the lease as after any expired lease.

    A fixable page comes back in the first of the ``wanted`` languages the design offers."""
    full = False
    with write(session):
        loaded = load(session, code, lock=True, orm=False, position=position)
        try:
            outcome = apply(loaded.state, Submit(position, token, form, loaded.design, now))
        except InvalidInput as err:
            slot = loaded.state.slot_at(position)
            if slot is None or slot.submitted:
                raise
            images = image_infos(session, loaded, slot)
            view = page_view(
                slot,
                images,
                design=loaded.design.localized(choose_language(loaded.design.languages, wanted)),
                person=loaded.person,
                state=loaded.state,
                error=err.message,
                submitted=form,
                problems=getattr(err, "problems", None),
            )
            raise InvalidPage(err.message, view) from None
        if isinstance(outcome, Stored):
            # the next page to hold now (the one just answered is released), unless it is held already
            following = None
            if not outcome.finished and outcome.status == ParticipantStatus.ACTIVE:
                following = next(s for s in loaded.state.pending if s.position != position)
                following = None if following.lease_live(now) else following
            lock = following.page_id if following is not None and following.kind == "regular" else None
            _store(session, loaded, outcome, now, _language(loaded, wanted), lock_page=lock)
            if following is not None:
                full = not lease_if_room(session, loaded=loaded, slot=following, now=now)
    if full:
        with write(session):
            refresh_leases(session, load(session, code, lock=True), now=now)  # swap or drop it
    return outcome  # type: ignore[return-value]


def _store(
    session: Session, loaded: Loaded, out: Stored, now: datetime, language: str, *, lock_page: str | None = None
) -> None:
    """Write a stored page. ``lock_page``: the page whose coverage the transaction counts next (``lease_if_room``);
    on PostgreSQL its ``RoundPage`` row is locked by the same statement, so the count that follows sees every
    transaction that held it before."""
    slot, sub = out.slot, out.submission
    rows = [
        {
            "slot_id": slot.id,
            "criterion": crit,
            "image_id": image_id,
            "rank": rank,
            "initial_position": pos,
            "moved": rank != pos + 1,
        }
        for crit, ranks in sub.ranks.items()
        for pos, (image_id, rank) in enumerate(zip(slot.image_order, ranks, strict=True))
    ]
    q = _page_statements()
    conn = session.connection()
    mark = {"slot_id": slot.id, "now": now, "digest": out.digest, "seconds": out.seconds_on_page}
    mark |= {"passed": out.attention_passed, "late": out.late}
    person = {
        "pid": loaded.row.id,
        "failed_checks": out.failed_checks,
        "status": out.status.value,
        "completed_at": now if out.finished else None,
        "language": language,
    }
    if not is_sqlite(conn.engine):  # one statement, one round trip: rankings, skips, slot and participant
        columns = {key: [r[key] for r in rows] for key in _RANKING_COLUMNS}
        page = {"p_round": loaded.row.round_id, "p_page": lock_page}
        conn.execute(q.store_pg, mark | person | columns | page | {"skipped": sorted(sub.skipped)})
        return
    if rows:  # SQLite: this transaction began with BEGIN IMMEDIATE, which already excludes every other writer
        conn.execute(q.rankings, rows)
    if sub.skipped:
        conn.execute(q.skips, [{"slot_id": slot.id, "criterion": c} for c in sorted(sub.skipped)])
    conn.execute(q.mark, mark)
    conn.execute(q.person, person | {"now": now})
