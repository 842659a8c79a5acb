"""Page coverage and leases: what counts towards a page's target, renewing a returning participant's pages, and
timing out participants whose leases ran out."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache
from types import SimpleNamespace

from sqlalchemy import bindparam, update
from sqlmodel import Session, col, func, or_, select

from app import assignment as assign
from app.blinding import image_token, preview_slot
from app.crud.common import Loaded, audit, load
from app.db import write
from app.flow import RoundNotFound, TryLater, apply, exclusion_threshold, is_excluded
from app.flow.machine import LEASE_WINDOW, Reclaim, Slot, refresh_plan, to_utc
from app.flow.status import LIVE_STATUSES, ParticipantStatus
from app.flow.views import ImageInfo
from app.models import Assignment, Participant, Round, RoundImage, RoundPage
from app.snapshots import StoredImage, round_images
from study_designs.schema import Design


def page_coverage(
    session: Session,
    *,
    round_id: str,
    culture: str | None,
    now: datetime,
    exclude_after: int | None = None,
    leases: bool = True,
) -> dict[str, int]:
    """Submitted regular rankings plus live leases (unless ``leases=False``), per page (pages without any are absent).

    Rankings of excluded participants (by hand, or by ``exclude_after`` failed attention checks) do not count, so
    their pages return to the pool and still reach the target with valid rankings.
    """
    q = (
        select(Assignment.page_id, Participant.status, Participant.failed_checks, func.count())
        .join(Participant, col(Participant.id) == Assignment.participant_id)
        .where(
            Assignment.round_id == round_id,
            Assignment.kind == "regular",
            or_(col(Assignment.submitted_at).is_not(None), col(Assignment.leased_until) > now)
            if leases
            else col(Assignment.submitted_at).is_not(None),
            col(Participant.pilot).is_(False),  # a researcher's trial run never fills (or holds) a page
        )
        .group_by(col(Assignment.page_id), col(Participant.status), col(Participant.failed_checks))
    )
    if culture is not None:
        q = q.where(Assignment.culture == culture)
    counts: Counter[str] = Counter()
    for page, status, failed, n in session.exec(q).all():
        if not is_excluded(status, failed, exclude_after):
            counts[page] += n
    return dict(counts)


def culture_pages(session: Session, round_id: str, culture: str) -> list[str]:
    """The culture's pages, row-locked (enrolment and lease renewal hold these locks while they count coverage)."""
    return list(
        session.exec(
            select(RoundPage.page_id)
            .where(RoundPage.round_id == round_id, RoundPage.culture == culture)
            .order_by(col(RoundPage.page_id))
            .with_for_update()
        ).all()
    )


def images_by_page_model(session: Session, round_id: str, page_ids: set[str]) -> dict[tuple[str, str], str]:
    rows = session.exec(
        select(RoundImage.page_id, RoundImage.model_id, RoundImage.image_id).where(
            RoundImage.round_id == round_id, col(RoundImage.page_id).in_(page_ids)
        )
    ).all()
    return {(page, model): image for page, model, image in rows}


def image_infos(session: Session, loaded: Loaded, slot: Slot) -> list[ImageInfo]:
    """The images of one slot, in its order, with tokens of this slot only (``app.blinding``)."""
    stored = round_images(session, loaded.row.round_id, loaded.round_secret)
    return _infos(stored, loaded.round_secret, slot.token, slot.image_order)


def preview_infos(session: Session, round_id: str, secret: str, image_ids: tuple[str, ...]) -> list[ImageInfo]:
    """The MTurk preview's example images, with tokens of the round's preview (``app.blinding.preview_slot``)."""
    return _infos(round_images(session, round_id, secret), secret, preview_slot(round_id), image_ids)


def _infos(
    stored: Mapping[str, StoredImage], secret: str, slot_token: str, image_ids: Sequence[str]
) -> list[ImageInfo]:
    out = []
    for image_id in image_ids:
        im = stored[image_id]
        token = image_token(secret, slot_token, image_id)
        out.append(ImageInfo(image_id, token, im.culture, im.prompt_id, im.width, im.height))
    return out


def assign_pages(
    session: Session, *, design: Design, person: Participant, culture: str, now: datetime, secret: str
) -> list[Assignment]:
    """Plan and store a participant's pages (once, when they choose their culture); none when nothing is left.

    ``secret`` is the round's own secret: it keys the culture's image orders, so they are reproducible from the
    database yet cannot be recomputed from the public design. When every page with room is only held by others'
    live leases, the culture is momentarily full: ``TryLater`` (nothing is written; the person may come back).
    """
    round_id = person.round_id
    pages = culture_pages(session, round_id, culture)
    if not pages:
        return []
    coverage = page_coverage(
        session, round_id=round_id, culture=culture, now=now, exclude_after=exclusion_threshold(design.quality)
    )
    latin_base = session.exec(
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.round_id == round_id, Assignment.culture == culture, Assignment.kind == "regular")
    ).one()
    index = session.exec(
        select(func.count())
        .select_from(Participant)
        .where(
            Participant.round_id == round_id,
            Participant.culture == culture,
            col(Participant.culture_index).is_not(None),
        )
    ).one()
    person.culture_index = index
    a, q = design.assignment, design.quality
    req = assign.PlanRequest(
        seed=f"{design.seed}:{round_id}:{person.pseudonym}",
        culture_pages=tuple(pages),
        coverage=coverage,
        target=a.target_rankings_per_page,
        pages_per_participant=a.pages_per_participant,
        models=tuple(m.id for m in design.models),
        criteria=tuple(c.id for c in design.criteria),
        latin_base=latin_base,
        participant_index=index,
        position_balance=a.position_balance,
        criteria_mode=a.criteria_order,
        attention_checks=q.attention_checks,
        repeat_pages=q.repeat_pages,
        check_criteria=tuple(c.id for c in design.criteria if not c.allow_skip),
        order_seed=assign.culture_order_seed(secret, design.seed, round_id, culture),
    )
    plans = assign.plan(req)
    if not plans:
        answered = page_coverage(
            session,
            round_id=round_id,
            culture=culture,
            now=now,
            exclude_after=exclusion_threshold(design.quality),
            leases=False,
        )
        if any(answered.get(p, 0) < a.target_rankings_per_page for p in pages):
            raise TryLater(
                "Every page for your culture is being worked on by someone right now. "
                "Please come back in a few minutes and choose your culture again.",
                retry_after=60,
            )
        return []
    images = images_by_page_model(session, round_id, {p.page_id for p in plans})
    lease = now + timedelta(minutes=a.lease_minutes)
    slots = []
    for i, p in enumerate(plans):
        order = [images[(p.page_id, m)] for m in p.model_order]
        slot = Assignment(
            participant_id=person.id,
            round_id=round_id,
            culture=culture,
            position=p.position,
            page_id=p.page_id,
            kind=p.kind,
            latin_row=p.latin_row,
            image_order=order,
            criteria_order=list(p.criteria_order),
            check_criterion=p.check_criterion,
            check_image_id=images[(p.page_id, p.check_model)] if p.check_model else None,
            token=secrets.token_urlsafe(18),
            leased_until=lease if i < LEASE_WINDOW else now,  # later pages are leased as the person reaches them
        )
        session.add(slot)
        slots.append(slot)
    return slots


def lease_if_room(session: Session, *, loaded: Loaded, slot: Slot, now: datetime) -> bool:
    """Inside a write transaction with ``loaded`` locked and, on PostgreSQL, the page's ``RoundPage`` row locked by
    an earlier statement (a submission's store statement locks it, ``crud.participants._store``): hold ``slot`` (the
    page a participant moves on to) when its page is below target — the common case after a stored page, in one
    statement. False when the page is full: ``refresh_leases`` then swaps or drops it. The lock comes from an earlier
    statement because the count must see every transaction that held the row before (each statement's snapshot is
    taken when it starts); that transaction waits for nothing after it (a full page is handled by ``refresh_leases``
    in a transaction of its own), so it cannot deadlock with one that locks the culture's pages in order.

    The count is ``page_coverage``'s for one page (submitted or live regular slots of participants who are neither
    pilots nor excluded); attention and repeat slots hold no place in the pool and are always leased."""
    row, design = loaded.row, loaded.design
    q = _lease_statements()
    conn = session.connection()
    lease = now + timedelta(minutes=design.assignment.lease_minutes)
    if slot.kind != "regular":
        return conn.execute(q.hold, {"slot_id": slot.id, "lease": lease}).rowcount == 1
    threshold = exclusion_threshold(design.quality)
    params = {
        "slot_id": slot.id,
        "lease": lease,
        "p_round": row.round_id,
        "p_page": slot.page_id,
        "now": now,
        "excluded": ParticipantStatus.EXCLUDED.value,
        "threshold": NO_THRESHOLD if threshold is None else threshold,
        "target": design.assignment.target_rankings_per_page,
    }
    return conn.execute(q.hold_if_room, params).rowcount == 1


NO_THRESHOLD = 2**31 - 1  # failed checks no one reaches: a design without attention checks excludes no one


@cache
def _lease_statements() -> SimpleNamespace:
    """``lease_if_room``'s statements, built once per process with bound parameters."""
    b = bindparam
    slot = Assignment.__table__  # type: ignore[attr-defined]
    other = slot.alias("other")
    person = Participant.__table__  # type: ignore[attr-defined]
    # the page's counted slots, looked at no further than the target: whether the page has room costs at most
    # ``target`` rows however often the page has been ranked
    counted = (
        select(other.c.id)
        .select_from(other.join(person, person.c.id == other.c.participant_id))
        .where(
            other.c.round_id == b("p_round"),
            other.c.page_id == b("p_page"),
            other.c.kind == "regular",
            or_(other.c.submitted_at.is_not(None), other.c.leased_until > b("now")),
            person.c.pilot.is_(False),
            person.c.status != b("excluded"),
            person.c.failed_checks < b("threshold"),
        )
        .limit(b("target"))
        .subquery()
    )
    taken = select(func.count()).select_from(counted).scalar_subquery()
    hold = update(slot).where(slot.c.id == b("slot_id")).values(leased_until=b("lease", type_=slot.c.leased_until.type))
    return SimpleNamespace(hold=hold, hold_if_room=hold.where(taken < b("target")))


def refresh_leases(session: Session, loaded: Loaded, *, now: datetime) -> Loaded:
    """Inside a write transaction with ``loaded`` locked: lease the participant's current page, swapping it when
    others have filled it since, or dropping never-shown pages that no longer have room (``flow.machine.
    refresh_plan``), until the current page is held; a participant left with no page has completed. Returns the
    participant as stored now."""
    row, design = loaded.row, loaded.design
    if row.culture is None:
        return loaded
    lease = now + timedelta(minutes=design.assignment.lease_minutes)
    changed = 0
    for _ in range(len(loaded.state.slots) + 1):
        pages = culture_pages(session, row.round_id, row.culture)
        coverage = page_coverage(
            session,
            round_id=row.round_id,
            culture=row.culture,
            now=now,
            exclude_after=exclusion_threshold(design.quality),
        )
        plan = refresh_plan(
            loaded.state,
            culture_pages=pages,
            coverage=coverage,
            target=design.assignment.target_rankings_per_page,
            now=now,
        )
        if not plan:
            break
        planned = [swap.slot.id for swap in plan]
        by_id = {a.id: a for a in session.exec(select(Assignment).where(col(Assignment.id).in_(planned))).all()}
        for swap in plan:
            slot = by_id[swap.slot.id]
            changed += 1
            if swap.dropped:
                session.delete(slot)
                continue
            if swap.swapped:
                stored = round_images(session, row.round_id, loaded.round_secret)
                models = [stored[i].model_id for i in slot.image_order]
                images = images_by_page_model(session, row.round_id, {swap.page_id})  # type: ignore[arg-type]
                slot.page_id = swap.page_id  # type: ignore[assignment]
                slot.image_order = [images[(swap.page_id, m)] for m in models]  # type: ignore[index]
                slot.token = secrets.token_urlsafe(18)
                slot.shown_at = None
            slot.leased_until = lease
            session.add(slot)
        session.flush()
        loaded = load(session, row.code, lock=True)
        if not any(s.dropped for s in plan):
            break
    if changed:
        if loaded.state.status == ParticipantStatus.ACTIVE and not loaded.state.pending:
            row = loaded.row
            row.status = ParticipantStatus.COMPLETED.value  # every page left was full: nothing more to rank
            row.completed_at = now
            session.add(row)
        audit(
            session,
            at=now,
            actor="participant",
            action="renew_leases",
            round_id=row.round_id,
            participant=row.id,
            slots=changed,
        )
    return loaded


def reclaim_expired_leases(session: Session, *, round_id: str, actor: str, now: datetime) -> list[str]:
    """Time out participants whose every open page lease has expired; their pages are back in the pool.

    Returns the pseudonyms timed out. Coverage already ignores expired leases; this makes it final, so a person
    who comes back after the lease cannot submit a page that has since been given to someone else.
    """
    now_utc = to_utc(now)
    with write(session):
        rnd = session.exec(select(Round).where(Round.id == round_id).with_for_update()).first()
        if rnd is None:
            raise RoundNotFound(f"no round {round_id!r}")
        people = session.exec(
            select(Participant)
            .where(Participant.round_id == round_id, col(Participant.status).in_(LIVE_STATUSES))
            .with_for_update()
        ).all()
        timed_out: list[str] = []
        for p in people:
            loaded = load(session, p.code)
            if apply(loaded.state, Reclaim(now_utc)).timed_out:  # type: ignore[union-attr]
                p.status = ParticipantStatus.TIMED_OUT.value
                session.add(p)
                timed_out.append(p.pseudonym)
        audit(session, at=now_utc, actor=actor, action="reclaim_leases", round_id=round_id, timed_out=timed_out)
    return timed_out
