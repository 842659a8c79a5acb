"""Keyed hashes of platform ids (pure): the resume key, the export pseudonym, and id validation."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.flow.exits import mturk_submit_url

_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}", re.ASCII)  # always used with fullmatch: no trailing newline slips through
PROLIFIC_KEYS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
MTURK_KEYS = ("workerId", "assignmentId", "hitId")
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"  # what MTurk sends while a worker previews a HIT
MTURK_SUBMIT = "turkSubmitTo"


class EntryError(ValueError):
    """Platform parameters that cannot be used; the message says which."""


@dataclass(frozen=True, slots=True)
class PlatformEntry:
    platform: str  # "prolific" | "mturk" | "none"
    participant_id: str | None  # the platform's participant id; None means "make a random one"
    raw: dict[str, str]
    preview: bool = False
    # the ids that make one participant: (PROLIFIC_PID, STUDY_ID) or (workerId, hitId or assignmentId);
    # empty for entries built by hand, where ``participant_id`` alone is the identity
    identity: tuple[str, ...] = ()


def valid_id(value: str) -> bool:
    """1-64 ASCII letters, digits, '-' or '_', the whole value (a trailing newline or space is refused)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def parse_entry(params: Mapping[str, str]) -> PlatformEntry:
    """Read Prolific (``PROLIFIC_PID``, ``STUDY_ID``, ``SESSION_ID``) or MTurk (``workerId``, ...) parameters.

    A Prolific participant is (PROLIFIC_PID, STUDY_ID), both required; SESSION_ID is recorded but is not part of
    the identity (a new session of the same study resumes). An MTurk participant is (workerId, hitId), or
    (workerId, assignmentId) when no hitId is given; workerId alone is refused; an ``assignmentId`` of
    ``ASSIGNMENT_NOT_AVAILABLE`` is a preview.
    """
    if "PROLIFIC_PID" in params:
        platform, keys, required = "prolific", PROLIFIC_KEYS, ("PROLIFIC_PID", "STUDY_ID")
    elif any(k in params for k in MTURK_KEYS):
        platform, keys, required = "mturk", MTURK_KEYS, ("workerId",)
        if params.get("assignmentId") in (MTURK_PREVIEW, "ASSIGNMENT_NOT_AVAILABLE"):
            return PlatformEntry("mturk", None, {}, preview=True)
    else:
        return PlatformEntry("none", None, {})
    raw: dict[str, str] = {}
    for key in keys:
        if key in params:
            if not valid_id(params[key]):
                raise EntryError(f"{key} must be 1-64 letters, digits, '-' or '_'.")
            raw[key] = params[key]
    if platform == "mturk" and (submit := mturk_submit_url(params.get(MTURK_SUBMIT))) is not None:
        raw[MTURK_SUBMIT] = submit.removesuffix("/mturk/externalSubmit")  # only MTurk's live or sandbox host
    missing = [k for k in required if k not in raw]
    if missing:
        raise EntryError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing.")
    if platform == "prolific":
        identity = (raw["PROLIFIC_PID"], raw["STUDY_ID"])
    else:
        second = raw.get("hitId") or raw.get("assignmentId")
        if second is None:
            raise EntryError("workerId alone is not enough: assignmentId or hitId is missing.")
        identity = (raw["workerId"], second)
    return PlatformEntry(platform, identity[0], raw, identity=identity)


def identity_key(entry: PlatformEntry) -> str:
    """The stable identity used for resume and pseudonyms (the id tuple joined; ids cannot contain the separator)."""
    if entry.identity:
        return "\x1f".join(entry.identity)
    if entry.participant_id is None:
        raise ValueError("an entry without platform ids has no identity")
    return entry.participant_id


def identities_of(platform: str, participant_id: str, raws: Iterable[Mapping[str, str]]) -> list[str]:
    """Identity keys a person with ``participant_id`` may have, given the stored ``platform_raw`` of a round's
    participants (for data requests, where the person gives only their platform id): one per study (STUDY_ID, or
    MTurk hitId/assignmentId) seen in the round, plus the bare id of entries built without a study."""
    seconds: set[str] = set()
    for raw in raws:
        if platform == "prolific" and raw.get("PROLIFIC_PID") == participant_id and raw.get("STUDY_ID"):
            seconds.add(raw["STUDY_ID"])
        elif platform == "mturk" and raw.get("workerId") == participant_id:
            second = raw.get("hitId") or raw.get("assignmentId")
            if second:
                seconds.add(second)
    return [participant_id] + ["\x1f".join((participant_id, s)) for s in sorted(seconds)]


def _mac(secret: str, *parts: str) -> str:
    return hmac.new(secret.encode(), "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def platform_key(secret: str, round_id: str, platform: str, participant_id: str) -> str:
    return _mac(secret, "resume", round_id, platform, participant_id)


def pseudonym(secret: str, round_id: str, platform: str, participant_id: str) -> str:
    return "p-" + _mac(secret, "pseudonym", round_id, platform, participant_id)[:16]
