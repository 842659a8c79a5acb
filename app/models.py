"""SQLModel tables. Datetimes are naive UTC. Raw platform ids live only in ``Participant.platform_raw``."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.flow.status import ParticipantStatus

ROUND_STATUSES = ("open", "paused", "closed")
SLOT_KINDS = ("regular", "attention", "repeat")


class Round(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    design_id: str = Field(max_length=64)
    design_toml: str = Field(sa_column=Column(Text, nullable=False))
    design_sha256: str = Field(max_length=64)
    manifest_json: str = Field(sa_column=Column(Text, nullable=False))
    manifest_sha256: str = Field(max_length=64)
    status: str = Field(default="open", max_length=16)
    created_at: datetime
    closed_at: datetime | None = None
    # drawn at launch, never shown: keys the image orders (``assignment.culture_order_seed``) and the per-slot image
    # tokens (``app.blinding``), so neither can be recomputed from the public design, yet both are reproducible
    secret: str = Field(default_factory=lambda: secrets.token_hex(32), max_length=64)
    # a pilot round: everyone who enters is flagged ``Participant.pilot`` until ``python -m app.rounds promote``
    pilot: bool = Field(default=False)


class RoundPage(SQLModel, table=True):
    """One page of a round; its row is what enrolment locks (``FOR UPDATE``) on PostgreSQL."""

    __tablename__ = "roundpage"
    round_id: str = Field(foreign_key="round.id", primary_key=True, max_length=64)
    page_id: str = Field(primary_key=True, max_length=160)
    culture: str = Field(index=True, max_length=64)
    prompt_id: str = Field(max_length=64)
    seed: int = Field(sa_type=BigInteger)


class RoundImage(SQLModel, table=True):
    __tablename__ = "roundimage"
    __table_args__ = (UniqueConstraint("round_id", "image_id"),)
    id: int | None = Field(default=None, primary_key=True)
    round_id: str = Field(foreign_key="round.id", index=True, max_length=64)
    image_id: str = Field(max_length=200)
    token: str = Field(unique=True, index=True, max_length=64)
    model_id: str = Field(max_length=64)
    culture: str = Field(max_length=64)
    prompt_id: str = Field(max_length=64)
    seed: int = Field(sa_type=BigInteger)
    page_id: str = Field(index=True, max_length=160)
    sha256: str = Field(max_length=64)
    path: str = Field(max_length=500, description="MEDIA_ROOT-relative path of the stripped copy")
    width: int | None = None
    height: int | None = None


class Participant(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("round_id", "platform_key"),)
    id: int | None = Field(default=None, primary_key=True)
    round_id: str = Field(foreign_key="round.id", index=True, max_length=64)
    code: str = Field(unique=True, index=True, max_length=64)
    platform: str = Field(max_length=16)
    platform_key: str = Field(max_length=64)
    platform_raw: dict = Field(default_factory=dict, sa_type=JSON)
    pseudonym: str = Field(max_length=64)
    culture: str | None = Field(default=None, max_length=64)
    culture_index: int | None = Field(default=None, description="0-based order of enrolment within the culture")
    status: str = Field(default=ParticipantStatus.CONSENT.value, max_length=16)  # app.flow.status
    exclusion_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime
    consented_at: datetime | None = None
    completed_at: datetime | None = None
    last_seen_at: datetime
    failed_checks: int = 0
    language: str | None = Field(default=None, max_length=35, description="the language last used to answer (BCP 47)")
    pilot: bool = Field(default=False, description="a researcher trying the round: never counted or exported")


class Assignment(SQLModel, table=True):
    """One slot: a participant's page at one position."""

    # a page's coverage is counted on every submission (``crud.leases.lease_if_room``): by round and page, from the
    # index alone (it holds every column the count reads but the participant's), not by scanning the round
    __table_args__ = (
        UniqueConstraint("participant_id", "position"),
        Index(
            "ix_assignment_page_coverage",
            "round_id",
            "page_id",
            "kind",
            "submitted_at",
            "leased_until",
            "participant_id",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id")  # indexed by (participant_id, position)
    round_id: str = Field(index=True, max_length=64)
    culture: str = Field(max_length=64)
    position: int
    page_id: str = Field(index=True, max_length=160)
    kind: str = Field(default="regular", max_length=16)
    latin_row: int | None = None
    image_order: list[str] = Field(default_factory=list, sa_type=JSON)
    criteria_order: list[str] = Field(default_factory=list, sa_type=JSON)
    check_criterion: str | None = Field(default=None, max_length=64)
    check_image_id: str | None = Field(default=None, max_length=200)
    attention_passed: bool | None = None
    token: str = Field(unique=True, max_length=64)
    leased_until: datetime
    shown_at: datetime | None = None
    submitted_at: datetime | None = None
    seconds_on_page: float | None = None
    payload_sha256: str | None = Field(default=None, max_length=64)
    late: bool = Field(default=False, description="submitted after its lease had run out (kept, flagged)")


class Ranking(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("slot_id", "criterion", "image_id"),)  # also the index by slot
    id: int | None = Field(default=None, primary_key=True)
    slot_id: int = Field(foreign_key="assignment.id")
    criterion: str = Field(max_length=64)
    image_id: str = Field(max_length=200)
    rank: int
    initial_position: int
    moved: bool


class RankingSkip(SQLModel, table=True):
    """A criterion the participant marked as too distressing to judge on one slot."""

    __tablename__ = "rankingskip"
    __table_args__ = (UniqueConstraint("slot_id", "criterion"),)  # also the index by slot
    id: int | None = Field(default=None, primary_key=True)
    slot_id: int = Field(foreign_key="assignment.id")
    criterion: str = Field(max_length=64)


class AuditLog(SQLModel, table=True):
    __tablename__ = "auditlog"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    round_id: str | None = Field(default=None, index=True, max_length=64)
    detail: dict = Field(default_factory=dict, sa_type=JSON)


class ConsoleLogin(SQLModel, table=True):
    """One console log-in: its cookie is valid only while ``ended_at`` is empty (log out ends it server-side)."""

    __tablename__ = "consolelogin"
    sid: str = Field(primary_key=True, max_length=64)
    actor: str = Field(max_length=64)
    created_at: datetime
    ended_at: datetime | None = None
