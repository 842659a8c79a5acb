"""approvals.csv: who completed, with their raw platform ids and quality outcome, for approving on the platform.

For the researcher only (it holds raw platform ids, which no other export does); every download is audited.
The suggestion is ``approve`` when nothing needs a look and ``review`` otherwise; it never says ``reject``, because
one failed check is no ground for rejecting someone's work. The last five columns are MTurk's bulk-upload layout
(``AssignmentId, WorkerId, HITId, Approve, Reject``); for Prolific, paste the ``participant_id`` column of the
``approve`` rows into Prolific's bulk approval. Pure: plain rows in, dicts out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.flow.status import ParticipantStatus
from app.timefmt import iso_z

APPROVAL_COLUMNS = (
    "platform",
    "participant_id",
    "study_id",
    "session_id",
    "status",
    "completed_at",
    "failed_checks",
    "flags",
    "suggestion",
    "pseudonym",
    "AssignmentId",
    "WorkerId",
    "HITId",
    "Approve",
    "Reject",
)
APPROVE, REVIEW = "approve", "review"
DECISIONS = (APPROVE, REVIEW)


@dataclass(frozen=True, slots=True)
class Completer:
    id: int
    platform: str
    platform_raw: Mapping[str, str]
    pseudonym: str
    status: str
    completed_at: datetime | None
    failed_checks: int


def suggestion(status: str, flags: Sequence[str], excluded: bool) -> str:
    """``approve`` only for a completed, unexcluded participant without flags; anything else is for a person to
    look at (``review``)."""
    return APPROVE if status == ParticipantStatus.COMPLETED and not excluded and not flags else REVIEW


def approval_rows(
    people: Sequence[Completer], flags: Mapping[int, Sequence[str]], excluded: Mapping[int, bool]
) -> list[dict[str, object]]:
    """One row per participant who finished every page (also those a researcher excluded afterwards)."""
    rows = []
    for p in sorted((p for p in people if p.completed_at is not None), key=lambda p: (p.completed_at, p.id)):
        raw = p.platform_raw
        pid = raw.get("PROLIFIC_PID") or raw.get("workerId") or ""
        study = raw.get("STUDY_ID") or raw.get("hitId") or ""
        sess = raw.get("SESSION_ID") or raw.get("assignmentId") or ""
        f = list(flags.get(p.id, ()))
        decision = suggestion(p.status, f, excluded.get(p.id, False))
        mturk = p.platform == "mturk"
        rows.append(
            {
                "platform": p.platform,
                "participant_id": pid,
                "study_id": study,
                "session_id": sess,
                "status": p.status,
                "completed_at": iso_z(p.completed_at),
                "failed_checks": p.failed_checks,
                "flags": ";".join(f),
                "suggestion": decision,
                "pseudonym": p.pseudonym,
                "AssignmentId": sess if mturk else "",
                "WorkerId": pid if mturk else "",
                "HITId": study if mturk else "",
                "Approve": "x" if mturk and decision == APPROVE else "",
                "Reject": "",
            }
        )
    return rows
