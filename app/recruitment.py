"""Crowd-platform set-up for a round, as pure functions: the links to paste, completion settings, lease advice."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from app.flow.exits import ExitInfo, all_exits
from study_designs.schema import Design

PROLIFIC_QUERY = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
MTURK_PARAMS = ("workerId", "assignmentId", "hitId", "turkSubmitTo")
# Prolific times a participant out at a multiple of the estimated completion time; MTurk uses the HIT's
# AssignmentDurationInSeconds. A lease shorter than the platform's limit hands pages to others while the person may
# still be working; a much longer one keeps abandoned pages out of the pool.
DEFAULT_SECONDS_PER_PAGE = 60.0
ONBOARDING_MINUTES = 3.0


@dataclass(frozen=True, slots=True)
class RecruitmentInfo:
    platform: str
    entry_url: str
    prolific_url: str
    mturk_external_url: str
    mturk_external_question: str
    completion_code: str
    completion_url: str | None
    exits: tuple[ExitInfo, ...]  # every way out, with the code and redirect a participant of this platform gets
    expected_minutes: float
    lease_minutes: int
    advice: tuple[str, ...]


def entry_url(base_url: str, round_id: str) -> str:
    return f"{base_url.rstrip('/')}/s/{round_id}"


def prolific_url(base_url: str, round_id: str) -> str:
    """The study URL for Prolific: Prolific substitutes the {{%...%}} placeholders per participant."""
    return f"{entry_url(base_url, round_id)}?{PROLIFIC_QUERY}"


def mturk_external_question(base_url: str, round_id: str, frame_height: int = 0) -> str:
    """ExternalQuestion XML: MTurk appends workerId, assignmentId, hitId and turkSubmitTo to the URL."""
    url = escape(entry_url(base_url, round_id))
    return (
        '<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
        '2006-07-14/ExternalQuestion.xsd">\n'
        f"  <ExternalURL>{url}</ExternalURL>\n"
        f"  <FrameHeight>{int(frame_height)}</FrameHeight>\n"
        "</ExternalQuestion>"
    )


def expected_minutes(design: Design, median_seconds_per_page: float | None) -> float:
    """Expected time to finish: every assigned page (regular, attention, repeat) at the observed median pace."""
    q = design.quality
    pages = design.assignment.pages_per_participant + q.attention_checks + q.repeat_pages
    per_page = median_seconds_per_page or DEFAULT_SECONDS_PER_PAGE
    return round(ONBOARDING_MINUTES + pages * per_page / 60, 1)


def lease_advice(
    *, lease_minutes: int, expected: float, platform_max_minutes: float | None, platform: str
) -> tuple[str, ...]:
    """Warnings when the lease timeout does not match the platform's maximum time or the expected duration."""
    out: list[str] = []
    if lease_minutes < expected:
        out.append(
            f"Lease of {lease_minutes} min is shorter than the expected {expected:g} min to finish: pages of people "
            "still working would be handed to others."
        )
    if platform_max_minutes is not None and platform_max_minutes > 0:
        if lease_minutes < platform_max_minutes:
            out.append(
                f"Lease of {lease_minutes} min ends before the platform's maximum time of {platform_max_minutes:g} min;"
                f" set lease_minutes to at least {math.ceil(platform_max_minutes)} or lower the platform's limit."
            )
        elif lease_minutes > 2 * platform_max_minutes:
            out.append(
                f"Lease of {lease_minutes} min is over twice the platform's maximum time of "
                f"{platform_max_minutes:g} min: abandoned pages stay out of the pool long after the platform has "
                "timed the person out."
            )
    elif platform in ("prolific", "mturk"):
        out.append(f"Enter the {platform} maximum time to check the lease of {lease_minutes} min against it.")
    return tuple(out)


def recruitment_info(
    design: Design,
    *,
    base_url: str,
    round_id: str,
    median_seconds_per_page: float | None = None,
    platform_max_minutes: float | None = None,
) -> RecruitmentInfo:
    r = design.recruitment
    expected = expected_minutes(design, median_seconds_per_page)
    exits = tuple(all_exits(r))
    completion_url = r.completion_url or exits[0].redirect_url
    lease = design.assignment.lease_minutes
    return RecruitmentInfo(
        platform=r.platform,
        entry_url=entry_url(base_url, round_id),
        prolific_url=prolific_url(base_url, round_id),
        mturk_external_url=entry_url(base_url, round_id),
        mturk_external_question=mturk_external_question(base_url, round_id),
        completion_code=r.completion_code,
        completion_url=completion_url,
        exits=exits,
        expected_minutes=expected,
        lease_minutes=lease,
        advice=lease_advice(
            lease_minutes=lease, expected=expected, platform_max_minutes=platform_max_minutes, platform=r.platform
        ),
    )
