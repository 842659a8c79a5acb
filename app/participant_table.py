"""participants.csv: one row per participant, pseudonymous ids only, with the quality counts from ``app.monitor``
(pure: plain rows in, dicts out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from app.monitor import ParticipantQuality, ParticipantRow, is_excluded
from app.timefmt import iso_z

PARTICIPANT_COLUMNS = (
    "participant_id",
    "platform",
    "culture",
    "status",
    "excluded",
    "exclusion_reason",
    "created_at",
    "completed_at",
    "minutes",
    "pages_submitted",
    "median_seconds_per_page",
    "failed_checks",
    "speeding_pages",
    "judgments",
    "untouched_judgments",
    "identical_pages",
    "retest_tau",
    "flags",
    "language",
)


def _iso(t: datetime | None) -> str:
    return iso_z(t)


def participant_rows(
    participants: Sequence[ParticipantRow],
    quality: Mapping[int, ParticipantQuality],
    *,
    exclude_after_failed_checks: int | None = None,
) -> list[dict[str, object]]:
    """participants.csv rows: pseudonymous ids only (never the code or the platform's raw id); ``excluded`` as the
    responses export marks it."""
    rows = []
    for p in participants:
        q = quality.get(p.id, ParticipantQuality(p.id))
        minutes = (
            round((p.completed_at - p.created_at).total_seconds() / 60, 2)
            if p.completed_at is not None and p.created_at is not None
            else ""
        )
        rows.append(
            {
                "participant_id": p.pseudonym,
                "platform": p.platform,
                "culture": p.culture or "",
                "status": p.status,
                "excluded": "true" if is_excluded(p, exclude_after_failed_checks) else "false",
                "exclusion_reason": p.exclusion_reason or "",
                "created_at": _iso(p.created_at),
                "completed_at": _iso(p.completed_at),
                "minutes": minutes,
                "pages_submitted": q.pages_submitted,
                "median_seconds_per_page": "" if q.median_seconds is None else round(q.median_seconds, 2),
                "failed_checks": q.failed_checks,
                "speeding_pages": q.speeding_pages,
                "judgments": q.judgments,
                "untouched_judgments": q.untouched_judgments,
                "identical_pages": q.identical_pages,
                "retest_tau": "" if q.retest_tau is None else round(q.retest_tau, 3),
                "flags": ";".join(q.flags),
                "language": p.language or "",
            }
        )
    return rows
