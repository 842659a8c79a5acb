"""All writes, one transaction per request: load under lock → ``app.flow`` decides → write the rows.

``participants`` (entry, onboarding, pages), ``leases`` (coverage, page assignment, lease renewal and timeouts),
``admin`` (round status, exclusion, deletion).
"""

from app.crud.admin import (
    ROUND_ACTIONS,
    change_round_status,
    clear_pilot,
    delete_participant_data,
    exclude_participant,
    promote_round,
)
from app.crud.common import Loaded, audit, load, load_current
from app.crud.leases import page_coverage, reclaim_expired_leases
from app.crud.participants import (
    InvalidPage,
    by_code,
    choose_culture,
    enrolment_cap_reached,
    enter,
    find_participant,
    finish_instructions,
    give_consent,
    preview,
    return_study,
    show,
    submit_page,
)
from app.flow import ParticipantNotFound, RoundNotFound, RoundStateError

__all__ = [
    "ROUND_ACTIONS",
    "InvalidPage",
    "Loaded",
    "ParticipantNotFound",
    "RoundNotFound",
    "RoundStateError",
    "audit",
    "by_code",
    "change_round_status",
    "choose_culture",
    "clear_pilot",
    "delete_participant_data",
    "enrolment_cap_reached",
    "enter",
    "exclude_participant",
    "find_participant",
    "finish_instructions",
    "give_consent",
    "load",
    "load_current",
    "page_coverage",
    "preview",
    "promote_round",
    "reclaim_expired_leases",
    "return_study",
    "show",
    "submit_page",
]
