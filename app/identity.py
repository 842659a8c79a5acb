"""Keyed hashes of platform ids (pure): the resume key, the export pseudonym, and id validation."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
PROLIFIC_KEYS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
MTURK_KEYS = ("workerId", "assignmentId", "hitId")
MTURK_PREVIEW = "ASSIGNMENT_NOT_AVAILABLE"


class EntryError(ValueError):
    """Platform parameters that cannot be used; the message says which."""


@dataclass(frozen=True, slots=True)
class PlatformEntry:
    platform: str  # "prolific" | "mturk" | "none"
    participant_id: str | None  # the platform's participant id; None means "make a random one"
    raw: dict[str, str]
    preview: bool = False


def parse_entry(params: Mapping[str, str]) -> PlatformEntry:
    """Read Prolific (``PROLIFIC_PID``, ``STUDY_ID``, ``SESSION_ID``) or MTurk (``workerId``, ...) parameters."""
    if "PROLIFIC_PID" in params:
        platform, keys, main = "prolific", PROLIFIC_KEYS, "PROLIFIC_PID"
    elif "workerId" in params or "assignmentId" in params:
        platform, keys, main = "mturk", MTURK_KEYS, "workerId"
        if params.get("assignmentId", "").startswith(MTURK_PREVIEW):
            return PlatformEntry("mturk", None, {}, preview=True)
        if "workerId" not in params:
            raise EntryError("workerId is missing.")
    else:
        return PlatformEntry("none", None, {})
    raw: dict[str, str] = {}
    for key in keys:
        if key in params:
            value = params[key]
            if not _ID.match(value):
                raise EntryError(f"{key} must be 1-64 letters, digits, '-' or '_'.")
            raw[key] = value
    return PlatformEntry(platform, raw[main], raw)


def _mac(secret: str, *parts: str) -> str:
    return hmac.new(secret.encode(), "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def platform_key(secret: str, round_id: str, platform: str, participant_id: str) -> str:
    return _mac(secret, "resume", round_id, platform, participant_id)


def pseudonym(secret: str, round_id: str, platform: str, participant_id: str) -> str:
    return "p-" + _mac(secret, "pseudonym", round_id, platform, participant_id)[:16]
