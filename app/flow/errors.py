"""Domain errors of the participant flow and round administration. They carry words, never HTTP status codes:
``app.routes.handlers`` maps each kind to its answer."""

from __future__ import annotations


class DomainError(Exception):
    """A request that does not fit the current state; ``message`` is shown to the person who sent it."""

    heading = "We could not save that"

    def __init__(self, message: str, *, heading: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if heading is not None:
            self.heading = heading


class NotFound(DomainError, LookupError):
    """No such participant, page, round or person."""


class InvalidInput(DomainError, ValueError):
    """A form that can be fixed and sent again."""


class Conflict(DomainError):
    """A request that contradicts what is already stored (stale token, other answers, wrong step)."""


class Closed(DomainError):
    """The round has closed and the participant holds no page they may still finish."""

    heading = "This study has closed"


class SubmissionError(InvalidInput):
    """A ranking page's form that does not validate."""


class RoundNotFound(NotFound):
    """No round with that id."""


class ParticipantNotFound(NotFound):
    """No participant with that pseudonym in the round."""


class RoundStateError(Conflict, ValueError):
    """The requested change does not apply to the round's or participant's current state."""


class TryLater(DomainError):
    """Momentarily impossible (every page with room is held by someone else): come back in ``retry_after`` seconds.
    Nothing is recorded against the person."""

    heading = "Please come back in a few minutes"

    def __init__(self, message: str, *, retry_after: int = 60, heading: str | None = None) -> None:
        super().__init__(message, heading=heading)
        self.retry_after = retry_after
