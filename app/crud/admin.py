"""Round administration (console, API and ``python -m app.rounds``): pause, resume and close a round, exclude a
participant, delete a participant's data. Every change is audited."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import Session, col, select

from app.crud.common import audit
from app.db import write
from app.flow import ParticipantNotFound, ParticipantStatus, RoundNotFound, RoundStateError
from app.flow.machine import to_utc
from app.models import Assignment, Participant, Ranking, RankingSkip, Round

ROUND_ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "pause": (frozenset({"open"}), "paused"),
    "resume": (frozenset({"paused"}), "open"),
    "close": (frozenset({"open", "paused"}), "closed"),
}


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
            rnd.closed_at = to_utc(now)
        session.add(rnd)
        audit(session, at=to_utc(now), actor=actor, action=action, round_id=round_id, previous=old, status=new_status)
    return rnd


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
        if p.status == ParticipantStatus.EXCLUDED:
            raise RoundStateError(f"participant {pseudonym!r} is already excluded")
        previous = p.status
        p.status = ParticipantStatus.EXCLUDED.value
        p.exclusion_reason = reason
        session.add(p)
        for slot in session.exec(
            select(Assignment).where(Assignment.participant_id == p.id, col(Assignment.submitted_at).is_(None))
        ):
            slot.leased_until = min(slot.leased_until, to_utc(now))
            session.add(slot)
        audit(
            session,
            at=to_utc(now),
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
            at=to_utc(now),
            actor=actor,
            action="delete_participant",
            round_id=round_id,
            participant=pseudonym,
            **counts,
        )
    return counts


def clear_pilot(session: Session, *, round_id: str, actor: str, now: datetime) -> int:
    """Delete every pilot (researcher trial) participant of the round and their rows; returns how many. Audited."""
    with write(session):
        ids = list(session.exec(select(Participant.id).where(Participant.round_id == round_id, col(Participant.pilot))))
        slot_ids = list(session.exec(select(Assignment.id).where(col(Assignment.participant_id).in_(ids))))
        if slot_ids:
            session.exec(delete(Ranking).where(col(Ranking.slot_id).in_(slot_ids)))
            session.exec(delete(RankingSkip).where(col(RankingSkip.slot_id).in_(slot_ids)))
            session.exec(delete(Assignment).where(col(Assignment.id).in_(slot_ids)))
        if ids:
            session.exec(delete(Participant).where(col(Participant.id).in_(ids)))
        audit(session, at=to_utc(now), actor=actor, action="clear_pilot", round_id=round_id, participants=len(ids))
    return len(ids)


def promote_round(session: Session, *, round_id: str, actor: str, now: datetime) -> int:
    """End a pilot round: from now on people who enter are real participants. The pilot's participants are kept,
    still flagged pilot (so counted nowhere and left out of default exports); returns how many. Audited."""
    with write(session):
        rnd = _locked_round(session, round_id)
        if not rnd.pilot:
            raise RoundStateError(f"round {round_id!r} is not a pilot round")
        kept = len(
            list(session.exec(select(Participant.id).where(Participant.round_id == round_id, col(Participant.pilot))))
        )
        rnd.pilot = False
        session.add(rnd)
        audit(session, at=to_utc(now), actor=actor, action="promote", round_id=round_id, pilot_participants_kept=kept)
    return kept
