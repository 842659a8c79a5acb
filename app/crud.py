"""All writes. Every public function is keyword-only and runs one transaction per state change.

Enrolment locks the culture's ``RoundPage`` rows (``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite the write
transaction starts with ``BEGIN IMMEDIATE``), so concurrent workers and hosts never hand out a page beyond its target.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from types import SimpleNamespace

from sqlalchemy import and_, bindparam, delete, func, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app import assignment as assign
from app.db import write
from app.flow import Submission, SubmissionError, parse_submission
from app.identity import PlatformEntry, identity_key, platform_key, pseudonym
from app.models import Assignment, AuditLog, Participant, Ranking, RankingSkip, Round, RoundImage, RoundPage
from app.snapshots import get_round, round_design, round_status_and_design
from study_designs.schema import Design

OTHER_CULTURE = "other"


class FlowError(Exception):
    """A request that does not fit the participant's state; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def audit(session: Session, *, at: datetime, actor: str, action: str, round_id: str | None, **detail: object) -> None:
    session.add(AuditLog(at=at, actor=actor, action=action, round_id=round_id, detail=dict(detail)))


# -- entry and the steps before the pages ----------------------------------------------------------------------


def find_participant(session: Session, *, round_id: str, entry: PlatformEntry, secret: str) -> Participant | None:
    """The participant who entered this round before with the same platform id, if any."""
    if entry.participant_id is None:
        return None
    return _by_key(session, round_id, platform_key(secret, round_id, entry.platform, identity_key(entry)))


def enter(session: Session, *, round_id: str, entry: PlatformEntry, secret: str, now: datetime) -> Participant:
    """Find the participant with this platform id in the round, or enrol a new one (random id for ``none``)."""
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
                status="consent",
                created_at=now,
                last_seen_at=now,
            )
            session.add(person)
        return person
    except IntegrityError:  # the same platform id entered twice at once: the other request created it
        found = _by_key(session, round_id, key)
        if found is None:
            raise
        return found


def _by_key(session: Session, round_id: str, key: str) -> Participant | None:
    return session.exec(
        select(Participant).where(Participant.round_id == round_id, Participant.platform_key == key)
    ).first()


def _locked_participant(session: Session, code: str) -> Participant:
    person = session.exec(select(Participant).where(Participant.code == code).with_for_update()).first()
    if person is None:
        raise FlowError(404, "Unknown participant link.")
    return person


def give_consent(session: Session, *, code: str, agreed: bool, now: datetime) -> Participant:
    if not agreed:
        raise FlowError(400, "Please tick the box to agree before continuing.")
    with write(session):
        person = _locked_participant(session, code)
        if person.status == "consent":
            person.status = "profile"
            person.consented_at = now
        person.last_seen_at = now
        session.add(person)
    return person


def finish_instructions(session: Session, *, code: str, now: datetime) -> Participant:
    with write(session):
        person = _locked_participant(session, code)
        if person.status == "instructions":
            person.status = "active"
        person.last_seen_at = now
        session.add(person)
    return person


def choose_culture(session: Session, *, code: str, culture: str, now: datetime) -> Participant:
    """Record the self-selected culture and store the participant's pages (assignment happens here, once)."""
    with write(session):
        person = _locked_participant(session, code)
        if person.status != "profile":
            return person  # a repeated or stale form: the culture was already chosen
        rnd = get_round(session, person.round_id)
        assert rnd is not None
        design = round_design(rnd)
        person.last_seen_at = now
        if culture == OTHER_CULTURE:
            person.status, person.exclusion_reason = "ineligible", "culture not in this study"
            session.add(person)
            return person
        if culture not in {c.id for c in design.cultures}:
            raise FlowError(400, "Please choose one of the listed options.")
        if rnd.status != "open":
            raise FlowError(409, "This study is not taking new participants at the moment.")
        person.culture = culture
        slots = _assign(session, design=design, person=person, culture=culture, now=now)
        if not slots:
            person.status, person.exclusion_reason = "ineligible", "no pages left for this culture"
        else:
            person.status = "instructions"
        session.add(person)
        audit(
            session,
            at=now,
            actor="participant",
            action="enrol",
            round_id=rnd.id,
            participant=person.id,
            culture=culture,
            pages=len(slots),
        )
    return person


def _assign(session: Session, *, design: Design, person: Participant, culture: str, now: datetime) -> list[Assignment]:
    round_id = person.round_id
    pages = list(
        session.exec(
            select(RoundPage.page_id)
            .where(RoundPage.round_id == round_id, RoundPage.culture == culture)
            .order_by(col(RoundPage.page_id))
            .with_for_update()
        ).all()
    )
    if not pages:
        return []
    coverage = page_coverage(
        session, round_id=round_id, culture=culture, now=now, exclude_after=_exclusion_threshold(design)
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
    )
    plans = assign.plan(req)
    if not plans:
        return []
    images = _images_by_page_model(session, round_id, {p.page_id for p in plans})
    lease = now + timedelta(minutes=a.lease_minutes)
    slots = []
    for p in plans:
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
            leased_until=lease,
        )
        session.add(slot)
        slots.append(slot)
    return slots


def _exclusion_threshold(design: Design) -> int | None:
    q = design.quality
    return q.exclude_after_failed_checks if q.attention_checks > 0 else None


def _images_by_page_model(session: Session, round_id: str, page_ids: set[str]) -> dict[tuple[str, str], str]:
    rows = session.exec(
        select(RoundImage.page_id, RoundImage.model_id, RoundImage.image_id).where(
            RoundImage.round_id == round_id, col(RoundImage.page_id).in_(page_ids)
        )
    ).all()
    return {(page, model): image for page, model, image in rows}


def page_coverage(
    session: Session, *, round_id: str, culture: str | None, now: datetime, exclude_after: int | None = None
) -> dict[str, int]:
    """Submitted regular rankings plus live leases, per page (pages without any are absent).

    Rankings of excluded participants (by hand, or by ``exclude_after`` failed attention checks) do not count, so
    their pages return to the pool and still reach the target with valid rankings.
    """
    valid = Participant.status != "excluded"
    if exclude_after is not None:
        valid = and_(valid, Participant.failed_checks < exclude_after)
    q = (
        select(Assignment.page_id, func.count())
        .join(Participant, col(Participant.id) == Assignment.participant_id)
        .where(
            Assignment.round_id == round_id,
            Assignment.kind == "regular",
            or_(col(Assignment.submitted_at).is_not(None), col(Assignment.leased_until) > now),
            valid,
        )
        .group_by(col(Assignment.page_id))
    )
    if culture is not None:
        q = q.where(Assignment.culture == culture)
    return {page: n for page, n in session.exec(q).all()}


# -- pages ------------------------------------------------------------------------------------------------------


def mark_shown(session: Session, *, slot_id: int, now: datetime) -> None:
    """Remember when a page was first shown (for seconds on page)."""
    with write(session):
        session.exec(
            update(Assignment)
            .where(col(Assignment.id) == slot_id, col(Assignment.shown_at).is_(None))
            .values(shown_at=now)
        )


def refresh_leases(session: Session, *, code: str, now: datetime) -> int:
    """Give a returning participant their expired pages back, or swap them for pages that still have room.

    Called when an active participant whose unsubmitted leases ran out comes back. A page still below its target
    is simply leased again; a page someone else has taken since is replaced by the least-covered page of the
    culture with room that the participant does not have yet (same image-order row); if there is none, the page is
    kept, so the person can finish. Returns how many slots were changed.
    """
    with write(session):
        person = _locked_participant(session, code)
        if person.status not in {"instructions", "active"} or person.culture is None:
            return 0
        slots = session.exec(select(Assignment).where(Assignment.participant_id == person.id)).all()
        expired = [s for s in slots if s.submitted_at is None and s.leased_until <= now]
        if not expired:
            return 0
        rnd = get_round(session, person.round_id)
        assert rnd is not None
        design = round_design(rnd)
        pages = list(
            session.exec(
                select(RoundPage.page_id)
                .where(RoundPage.round_id == person.round_id, RoundPage.culture == person.culture)
                .order_by(col(RoundPage.page_id))
                .with_for_update()
            ).all()
        )
        coverage = dict.fromkeys(pages, 0) | page_coverage(
            session,
            round_id=person.round_id,
            culture=person.culture,
            now=now,
            exclude_after=_exclusion_threshold(design),
        )
        target = design.assignment.target_rankings_per_page
        lease = now + timedelta(minutes=design.assignment.lease_minutes)
        mine = {s.page_id for s in slots if s.kind == "regular"}
        changed = 0
        for slot in sorted(expired, key=lambda s: s.position):
            if slot.kind == "regular" and coverage.get(slot.page_id, 0) >= target:
                free = sorted((p for p in pages if p not in mine and coverage[p] < target), key=lambda p: coverage[p])
                if free:
                    models = _models_of(session, person.round_id, slot.image_order)
                    images = _images_by_page_model(session, person.round_id, {free[0]})
                    mine.add(free[0])
                    slot.page_id = free[0]
                    slot.image_order = [images[(free[0], m)] for m in models]
                    slot.token = secrets.token_urlsafe(18)
                    slot.shown_at = None
            if slot.kind == "regular":
                coverage[slot.page_id] = coverage.get(slot.page_id, 0) + 1
            slot.leased_until = lease
            session.add(slot)
            changed += 1
        audit(
            session,
            at=now,
            actor="participant",
            action="renew_leases",
            round_id=person.round_id,
            participant=person.id,
            slots=changed,
        )
    return changed


def _models_of(session: Session, round_id: str, image_ids: list[str]) -> list[str]:
    rows = session.exec(
        select(RoundImage.image_id, RoundImage.model_id).where(
            RoundImage.round_id == round_id, col(RoundImage.image_id).in_(image_ids)
        )
    ).all()
    by_id = dict(rows)
    return [by_id[i] for i in image_ids]


@dataclass(frozen=True, slots=True)
class SubmitResult:
    participant_id: int
    slot_id: int
    replay: bool  # True when this was an identical retry of an already stored submission
    finished: bool


_SLOT_COLUMNS = (
    Assignment.id,
    Assignment.token,
    Assignment.kind,
    Assignment.image_order,
    Assignment.criteria_order,
    Assignment.check_criterion,
    Assignment.check_image_id,
    Assignment.submitted_at,
    Assignment.payload_sha256,
    Assignment.shown_at,
    Assignment.leased_until,
)


@cache
def _submit_statements() -> SimpleNamespace:
    """The statements of a submission, built once per process with bound parameters (cheaper than rebuilding)."""
    b = bindparam
    return SimpleNamespace(
        person=select(Participant.id, Participant.round_id, Participant.status, Participant.failed_checks)
        .where(col(Participant.code) == b("code"))
        .with_for_update(),
        slot=select(*_SLOT_COLUMNS).where(
            col(Assignment.participant_id) == b("pid"), col(Assignment.position) == b("position")
        ),
        pending=select(func.min(Assignment.position), func.count()).where(
            col(Assignment.participant_id) == b("pid"), col(Assignment.submitted_at).is_(None)
        ),
        mark=update(Assignment)
        .where(col(Assignment.id) == b("slot_id"))
        .values(
            submitted_at=b("now"),
            payload_sha256=b("digest"),
            seconds_on_page=b("seconds"),
            attention_passed=b("passed"),
        )
        .execution_options(synchronize_session=False),
        leases=update(Assignment)
        .where(
            col(Assignment.participant_id) == b("pid"),
            col(Assignment.submitted_at).is_(None),
            col(Assignment.leased_until) < b("lease"),
        )
        .values(leased_until=b("lease_value"))
        .execution_options(synchronize_session=False),
        person_update=update(Participant)
        .where(col(Participant.id) == b("pid"))
        .values(
            last_seen_at=b("now"),
            failed_checks=b("failed_checks"),
            status=b("status"),
            completed_at=b("completed_at"),
        )
        .execution_options(synchronize_session=False),
    )


def submit_page(
    session: Session,
    *,
    code: str,
    position: int,
    token: str,
    form: Mapping[str, Sequence[str]],
    now: datetime,
) -> SubmitResult:
    """Validate and store one page. An identical retry is a no-op; a different resubmission is a 409.

    Written with column selects and bulk statements: this is the request a study makes most often.
    """
    with write(session):
        q = _submit_statements()
        person = session.exec(q.person, params={"code": code}).first()
        if person is None:
            raise FlowError(404, "Unknown participant link.")
        pid, round_id, status, failed_checks = person
        slot = session.exec(q.slot, params={"pid": pid, "position": position}).first()
        if slot is None:
            raise FlowError(404, "This page is not part of your study.")
        if not secrets.compare_digest(slot.token, token):
            raise FlowError(409, "This form is out of date (stale token). Please reload the page.")
        found = round_status_and_design(session, round_id)
        assert found is not None
        round_status, design = found
        skippable = {c.id for c in design.criteria if c.allow_skip}
        try:
            sub = parse_submission(
                form, criteria=slot.criteria_order, n_items=len(slot.image_order), skippable=skippable
            )
        except SubmissionError as err:
            raise FlowError(err.status, err.message) from None
        if slot.submitted_at is not None:
            if slot.payload_sha256 == sub.digest():
                return SubmitResult(pid, slot.id, replay=True, finished=status == "completed")
            raise FlowError(409, "This page was already submitted with different answers; they were kept.")
        if status != "active":
            raise FlowError(409, "Please continue from your current step.")
        first_pending, n_pending = session.exec(q.pending, params={"pid": pid}).one()
        if position != first_pending:
            raise FlowError(409, "This is not your current page. Please continue from your current page.")
        if round_status == "closed" and _utc(slot.leased_until) <= _utc(now):
            # closing takes no one new; people already inside finish the pages they hold
            raise FlowError(409, "This study round is closed.")
        _store(session, slot=slot, sub=sub, now=now)
        passed = None
        if slot.kind == "attention":
            ranks = sub.ranks.get(slot.check_criterion or "")
            passed = ranks is not None and assign.attention_passed(
                ranks[slot.image_order.index(slot.check_image_id)], len(slot.image_order)
            )
        seconds = None if slot.shown_at is None else round((now - slot.shown_at).total_seconds(), 3)
        digest = sub.digest()
        session.exec(
            q.mark, params={"slot_id": slot.id, "now": now, "digest": digest, "seconds": seconds, "passed": passed}
        )
        lease = now + timedelta(minutes=design.assignment.lease_minutes)
        session.exec(q.leases, params={"pid": pid, "lease": lease, "lease_value": lease})  # remaining pages stay leased
        finished = n_pending == 1
        session.exec(
            q.person_update,
            params={
                "pid": pid,
                "now": now,
                "failed_checks": failed_checks + (passed is False),
                "status": "completed" if finished else status,
                "completed_at": now if finished else None,
            },
        )
    return SubmitResult(pid, slot.id, replay=False, finished=finished)


def _store(session: Session, *, slot, sub: Submission, now: datetime) -> None:  # type: ignore[no-untyped-def]
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
    if rows:
        session.exec(insert(Ranking), params=rows)
    if sub.skipped:
        session.exec(insert(RankingSkip), params=[{"slot_id": slot.id, "criterion": c} for c in sorted(sub.skipped)])


# -- researcher operations (console, API and ``python -m app.rounds``) ------------------------------------------

ROUND_ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "pause": (frozenset({"open"}), "paused"),
    "resume": (frozenset({"paused"}), "open"),
    "close": (frozenset({"open", "paused"}), "closed"),
}
LIVE_PARTICIPANT_STATUSES = ("consent", "profile", "instructions", "active")


class RoundNotFound(LookupError):
    """No round with that id."""


class ParticipantNotFound(LookupError):
    """No participant with that pseudonym in the round."""


class RoundStateError(ValueError):
    """The requested change does not apply to the round's or participant's current state (HTTP 409)."""


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _locked_round(session: Session, round_id: str) -> Round:
    rnd = session.exec(select(Round).where(Round.id == round_id).with_for_update()).first()
    if rnd is None:
        raise RoundNotFound(f"no round {round_id!r}")
    return rnd


def change_round_status(session: Session, *, round_id: str, action: str, actor: str, now: datetime) -> Round:
    """Pause (no new entry; people already in may finish), resume, or close (final) a round, audited."""
    if action not in ROUND_ACTIONS:
        raise ValueError(f"unknown round action {action!r}; use one of {sorted(ROUND_ACTIONS)}")
    allowed, new_status = ROUND_ACTIONS[action]
    with write(session):
        rnd = _locked_round(session, round_id)
        if rnd.status not in allowed:
            raise RoundStateError(f"cannot {action} round {round_id!r}: it is {rnd.status}")
        old = rnd.status
        rnd.status = new_status
        if new_status == "closed":
            rnd.closed_at = _utc(now)
        session.add(rnd)
        audit(session, at=_utc(now), actor=actor, action=action, round_id=round_id, previous=old, status=new_status)
    return rnd


def reclaim_expired_leases(session: Session, *, round_id: str, actor: str, now: datetime) -> list[str]:
    """Time out participants whose every open page lease has expired; their pages are back in the pool.

    Returns the pseudonyms timed out. Coverage already ignores expired leases; this makes it final, so a person
    who comes back after the lease cannot submit a page that has since been given to someone else.
    """
    now_utc = _utc(now)
    with write(session):
        _locked_round(session, round_id)
        people = session.exec(
            select(Participant)
            .where(Participant.round_id == round_id, col(Participant.status).in_(LIVE_PARTICIPANT_STATUSES))
            .with_for_update()
        ).all()
        timed_out: list[str] = []
        for p in people:
            open_slots = session.exec(
                select(Assignment).where(Assignment.participant_id == p.id, col(Assignment.submitted_at).is_(None))
            ).all()
            if open_slots and all(s.leased_until <= now_utc for s in open_slots):
                p.status = "timed_out"
                session.add(p)
                timed_out.append(p.pseudonym)
        audit(session, at=_utc(now), actor=actor, action="reclaim_leases", round_id=round_id, timed_out=timed_out)
    return timed_out


def _by_pseudonym(session: Session, round_id: str, pseudonym: str) -> Participant:
    p = session.exec(
        select(Participant)
        .where(Participant.round_id == round_id, Participant.pseudonym == pseudonym)
        .with_for_update()
    ).first()
    if p is None:
        raise ParticipantNotFound(f"no participant {pseudonym!r} in round {round_id!r}")
    return p


def exclude_participant(
    session: Session, *, round_id: str, pseudonym: str, reason: str, actor: str, now: datetime
) -> Participant:
    """Mark a participant excluded with a reason; their rows are kept, their open leases released."""
    reason = " ".join(reason.split())[:200]
    if not reason:
        raise ValueError("a reason is required to exclude a participant")
    with write(session):
        p = _by_pseudonym(session, round_id, pseudonym)
        if p.status == "excluded":
            raise RoundStateError(f"participant {pseudonym!r} is already excluded")
        previous = p.status
        p.status = "excluded"
        p.exclusion_reason = reason
        session.add(p)
        for slot in session.exec(
            select(Assignment).where(Assignment.participant_id == p.id, col(Assignment.submitted_at).is_(None))
        ):
            slot.leased_until = min(slot.leased_until, _utc(now))
            session.add(slot)
        audit(
            session,
            at=_utc(now),
            actor=actor,
            action="exclude_participant",
            round_id=round_id,
            participant=pseudonym,
            reason=reason,
            previous=previous,
        )
    return p


def delete_participant_data(
    session: Session, *, round_id: str, pseudonym: str, actor: str, now: datetime
) -> dict[str, int]:
    """Delete a participant's rows (on their request): rankings, skips, slots and the participant. Audited."""
    with write(session):
        p = _by_pseudonym(session, round_id, pseudonym)
        slot_ids = list(session.exec(select(Assignment.id).where(Assignment.participant_id == p.id)))
        counts = {"rankings": 0, "skips": 0, "slots": len(slot_ids)}
        if slot_ids:
            counts["rankings"] = session.exec(delete(Ranking).where(col(Ranking.slot_id).in_(slot_ids))).rowcount or 0
            counts["skips"] = (
                session.exec(delete(RankingSkip).where(col(RankingSkip.slot_id).in_(slot_ids))).rowcount or 0
            )
            session.exec(delete(Assignment).where(col(Assignment.id).in_(slot_ids)))
        session.exec(delete(Participant).where(Participant.id == p.id))
        audit(
            session,
            at=_utc(now),
            actor=actor,
            action="delete_participant",
            round_id=round_id,
            participant=pseudonym,
            **counts,
        )
    return counts
