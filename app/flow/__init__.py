"""The participant flow, pure and HTTP-free: statuses and the exclusion rule (``status``), domain errors
(``errors``), the state machine with every step and transition (``machine``), what each step shows (``views``) and
the validation of a ranking page (``submission``)."""

from app.flow.errors import (
    Closed,
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    ParticipantNotFound,
    RoundNotFound,
    RoundStateError,
    SubmissionError,
    TryLater,
)
from app.flow.machine import Slot, State, Step, apply, current_step
from app.flow.status import ParticipantStatus, exclusion_threshold, is_excluded
from app.flow.submission import Submission, parse_submission

__all__ = [
    "Closed",
    "Conflict",
    "DomainError",
    "InvalidInput",
    "NotFound",
    "ParticipantNotFound",
    "ParticipantStatus",
    "RoundNotFound",
    "RoundStateError",
    "Slot",
    "State",
    "Step",
    "Submission",
    "SubmissionError",
    "TryLater",
    "apply",
    "current_step",
    "exclusion_threshold",
    "is_excluded",
    "parse_submission",
]
