"""Every way out of the study and what the participant is given there: a code and, on Prolific, a redirect.

Prolific studies use one completion code per case (completed, screened out, declined consent, study full, timed
out); the design's ``[recruitment]`` names them. Where a design gives a code but no URL, Prolific's own completion
link for that code is used. Pure functions of the design.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from study_designs.schema import EXIT_KINDS, Recruitment

PROLIFIC_COMPLETE = "https://app.prolific.com/submissions/complete?cc={code}"
MTURK_SUBMIT_HOSTS = ("www.mturk.com", "workersandbox.mturk.com")


@dataclass(frozen=True, slots=True)
class ExitInfo:
    kind: str  # completed | screened_out | declined | full | timed_out
    code: str | None
    redirect_url: str | None


def exit_for(rec: Recruitment, kind: str, platform: str) -> ExitInfo:
    """The code and redirect for ``kind``; redirects only for Prolific participants (others have nowhere to go)."""
    if kind == "completed":
        code, url = rec.completion_code, rec.completion_url
    else:
        ex = getattr(rec, kind)
        code, url = ex.code, ex.url
    if url is None and code is not None and platform == "prolific" == rec.platform:
        url = PROLIFIC_COMPLETE.format(code=code)
    return ExitInfo(kind, code, url if platform == "prolific" else None)


def all_exits(rec: Recruitment) -> list[ExitInfo]:
    """Every exit as a Prolific participant of this design would meet it (for the console and the docs)."""
    return [exit_for(rec, k, rec.platform) for k in EXIT_KINDS]


def mturk_submit_url(turk_submit_to: str | None) -> str | None:
    """``{turkSubmitTo}/mturk/externalSubmit`` when ``turkSubmitTo`` is MTurk's live or sandbox site, else None.

    The host comes from the worker's URL, so anything but the two MTurk hosts over https is refused (no form may
    post a worker's assignment to somewhere else).
    """
    if not turk_submit_to:
        return None
    parts = urlsplit(turk_submit_to)
    if parts.scheme != "https" or parts.hostname not in MTURK_SUBMIT_HOSTS or parts.port is not None:
        return None
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username or parts.password:
        return None
    return f"https://{parts.hostname}/mturk/externalSubmit"
