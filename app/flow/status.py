"""Participant statuses and the exclusion rule: the only place either is written down."""

from __future__ import annotations

from enum import StrEnum

from study_designs.schema import Quality


class ParticipantStatus(StrEnum):
    CONSENT = "consent"
    PROFILE = "profile"
    INSTRUCTIONS = "instructions"
    ACTIVE = "active"
    COMPLETED = "completed"
    TIMED_OUT = "timed_out"
    RETURNED = "returned"
    EXCLUDED = "excluded"
    INELIGIBLE = "ineligible"

    @property
    def is_live(self) -> bool:
        """Still taking part: may hold live page leases and add rankings."""
        return self in _LIVE

    @property
    def is_ended(self) -> bool:
        """Stopped before finishing (timed out, returned, excluded): the session has ended."""
        return self in _ENDED


_LIVE = frozenset(
    {ParticipantStatus.CONSENT, ParticipantStatus.PROFILE, ParticipantStatus.INSTRUCTIONS, ParticipantStatus.ACTIVE}
)
_ENDED = frozenset({ParticipantStatus.TIMED_OUT, ParticipantStatus.RETURNED, ParticipantStatus.EXCLUDED})
LIVE_STATUSES = tuple(s.value for s in ParticipantStatus if s.is_live)
STATUS_VALUES = tuple(s.value for s in ParticipantStatus)  # the order the console lists them in

INELIGIBLE_CULTURE = "culture not in this study"
INELIGIBLE_NO_PAGES = "no pages left for this culture"
INELIGIBLE_DECLINED = "declined consent"


def exclusion_threshold(quality: Quality) -> int | None:
    """Failed attention checks that exclude a participant, or None when the design has no attention checks."""
    return quality.exclude_after_failed_checks if quality.attention_checks > 0 else None


def is_excluded(status: str, failed_checks: int, threshold: int | None) -> bool:
    """Excluded by a researcher, or by the design's attention-check rule (as coverage, monitor and export count it)."""
    return status == ParticipantStatus.EXCLUDED or (threshold is not None and failed_checks >= threshold)
