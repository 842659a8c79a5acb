"""Read side of the researcher console and API: database rows -> the plain rows ``app.monitor`` computes on."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from app import approvals, monitor, participant_table
from app.flow import exclusion_threshold
from app.identity import identities_of, pseudonym
from app.models import Assignment, AuditLog, Participant, Ranking, RankingSkip, Round, RoundPage
from app.snapshots import round_design
from app.timefmt import iso_z
from study_designs.schema import Design


def aware_utc(t: datetime) -> datetime:
    """Timestamps are stored timezone-aware in UTC; a naive time is taken to be UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class RoundData:
    round: Round
    design: Design
    pages: list[monitor.PageRef]
    participants: list[monitor.ParticipantRow]
    slots: list[monitor.SlotRow]
    rankings: list[monitor.RankingRow]
    skipped: int


@dataclass(frozen=True, slots=True)
class MonitorView:
    coverage: list[monitor.CultureCoverage]
    summary: monitor.RoundSummary
    quality: dict[int, monitor.ParticipantQuality]
    attention: list[monitor.AttentionHealth]
    rules: monitor.FlagRules


def list_rounds(session: Session) -> list[Round]:
    return list(session.exec(select(Round).order_by(col(Round.created_at).desc(), col(Round.id))))


def participant_counts(session: Session) -> dict[str, dict[str, int]]:
    """round id -> participant status -> count (one grouped query for the rounds list)."""
    rows = session.exec(
        select(Participant.round_id, Participant.status, func.count())
        .where(col(Participant.pilot).is_(False))
        .group_by(Participant.round_id, Participant.status)
    )
    out: dict[str, dict[str, int]] = {}
    for round_id, status, n in rows:
        out.setdefault(round_id, {})[status] = n
    return out


def load_round_data(session: Session, rnd: Round) -> RoundData:
    design = round_design(rnd)
    pages = [
        monitor.PageRef(p.page_id, p.culture)
        for p in session.exec(
            select(RoundPage)
            .where(RoundPage.round_id == rnd.id)
            .order_by(col(RoundPage.culture), col(RoundPage.page_id))
        )
    ]
    if not pages:
        pages = [monitor.PageRef(p.id, p.culture) for p in design.pages()]
    people = session.exec(
        select(Participant)
        .where(Participant.round_id == rnd.id, col(Participant.pilot).is_(False))  # trial runs are not counted
        .order_by(col(Participant.id))
    )
    participants = [
        monitor.ParticipantRow(
            id=p.id,
            pseudonym=p.pseudonym,
            status=p.status,
            culture=p.culture,
            platform=p.platform,
            failed_checks=p.failed_checks,
            exclusion_reason=p.exclusion_reason,
            created_at=p.created_at,
            completed_at=p.completed_at,
            last_seen_at=p.last_seen_at,
            language=p.language,
        )
        for p in people
    ]
    slots = [
        monitor.SlotRow(
            id=s.id,
            participant_id=s.participant_id,
            page_id=s.page_id,
            position=s.position,
            kind=s.kind,
            leased_until=s.leased_until,
            submitted_at=s.submitted_at,
            seconds_on_page=s.seconds_on_page,
            attention_passed=s.attention_passed,
        )
        for s in session.exec(
            select(Assignment)
            .join(Participant, col(Participant.id) == Assignment.participant_id)
            .where(Assignment.round_id == rnd.id, col(Participant.pilot).is_(False))
        )
    ]
    ranking_rows = session.exec(
        select(Ranking)
        .join(Assignment, col(Assignment.id) == col(Ranking.slot_id))
        .join(Participant, col(Participant.id) == Assignment.participant_id)
        .where(Assignment.round_id == rnd.id, col(Participant.pilot).is_(False))
    )
    rankings = [
        monitor.RankingRow(r.slot_id, r.criterion, r.image_id, r.rank, r.initial_position) for r in ranking_rows
    ]
    skipped = session.exec(
        select(func.count())
        .select_from(RankingSkip)
        .join(Assignment, col(Assignment.id) == col(RankingSkip.slot_id))
        .join(Participant, col(Participant.id) == Assignment.participant_id)
        .where(Assignment.round_id == rnd.id, col(Participant.pilot).is_(False))
    ).one()
    return RoundData(rnd, design, pages, participants, slots, rankings, int(skipped))


def flag_rules(design: Design) -> monitor.FlagRules:
    q = design.quality
    return monitor.FlagRules(
        min_seconds_per_page=q.min_seconds_per_page,
        exclude_after_failed_checks=exclusion_threshold(q),
    )


def monitor_view(data: RoundData, now: datetime) -> MonitorView:
    now = aware_utc(now)
    rules = flag_rules(data.design)
    coverage = monitor.coverage_matrix(
        data.pages,
        data.slots,
        data.participants,
        target=data.design.assignment.target_rankings_per_page,
        now=now,
        exclude_after_failed_checks=rules.exclude_after_failed_checks,
    )
    quality = monitor.participant_quality(data.participants, data.slots, data.rankings, rules)
    summary = monitor.round_summary(
        data.participants, data.slots, data.rankings, coverage, quality, skipped_judgments=data.skipped, now=now
    )
    return MonitorView(coverage, summary, quality, monitor.attention_health(data.slots, rules), rules)


def participants_csv(data: RoundData, view: MonitorView) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=participant_table.PARTICIPANT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(
        participant_table.participant_rows(
            data.participants, view.quality, exclude_after_failed_checks=view.rules.exclude_after_failed_checks
        )
    )
    return buf.getvalue()


def approvals_csv(session: Session, data: RoundData, view: MonitorView) -> str:
    """approvals.csv (raw platform ids: researcher only, audited by the caller)."""
    rows = session.exec(
        select(Participant).where(
            Participant.round_id == data.round.id,
            col(Participant.completed_at).is_not(None),
            col(Participant.pilot).is_(False),
        )
    )
    people = [
        approvals.Completer(
            p.id, p.platform, dict(p.platform_raw or {}), p.pseudonym, p.status, p.completed_at, p.failed_checks
        )
        for p in rows
        if p.id is not None
    ]
    threshold = view.rules.exclude_after_failed_checks
    excluded = {p.id: monitor.is_excluded(p, threshold) for p in data.participants}
    flags = {pid: q.flags for pid, q in view.quality.items()}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=approvals.APPROVAL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(approvals.approval_rows(people, flags, excluded))
    return buf.getvalue()


def snapshot(rnd: Round) -> dict:
    """The frozen inputs of a round: design TOML and manifest exactly as launched, with their hashes."""
    manifest_text = rnd.manifest_json
    try:
        manifest: object = json.loads(manifest_text)
    except json.JSONDecodeError:
        manifest = [json.loads(line) for line in manifest_text.splitlines() if line.strip()]
    return {
        "schema": "scoft-study/round-snapshot/v1",
        "round_id": rnd.id,
        "design_id": rnd.design_id,
        "status": rnd.status,
        "created_at": iso_z(rnd.created_at),
        "closed_at": iso_z(rnd.closed_at) or None,
        "design_sha256": rnd.design_sha256,
        "design_toml": rnd.design_toml,
        "manifest_sha256": rnd.manifest_sha256,
        "manifest": manifest,
    }


def audit_entries(session: Session, *, round_id: str | None = None, limit: int = 200) -> list[AuditLog]:
    query = select(AuditLog).order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc()).limit(limit)
    if round_id is not None:
        query = query.where(AuditLog.round_id == round_id)
    return list(session.exec(query))


def find_participant(session: Session, *, round_id: str, pseudonym: str) -> Participant | None:
    return session.exec(
        select(Participant).where(Participant.round_id == round_id, Participant.pseudonym == pseudonym)
    ).first()


def find_by_platform_id(session: Session, *, round_id: str, platform: str, pid: str, secret: str) -> Participant | None:
    """The participant a person with platform id ``pid`` is in this round (for data requests), trying each study
    (STUDY_ID, hitId) the round has seen, since the identity is the (id, study) pair."""
    raws = session.exec(
        select(Participant.platform_raw).where(Participant.round_id == round_id, Participant.platform == platform)
    ).all()
    for key in identities_of(platform, pid, raws):
        found = find_participant(session, round_id=round_id, pseudonym=pseudonym(secret, round_id, platform, key))
        if found is not None:
            return found
    return None
