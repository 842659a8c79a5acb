"""Image tokens that say nothing (pure): each participant page slot gets its own token for each of its images.

A token is ``{slot token}.{mac}`` with ``mac`` a keyed hash of (round secret, slot token, image id). Two
participants shown the same image get unrelated tokens, so pooling what they saw joins nothing; and ``/i/`` resolves
a token only to an image of that very slot (the slot is found by its token, the image by recomputing the macs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

_PART = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
MAC_CHARS = 22  # 128 bits


def image_token(secret: str, slot_token: str, image_id: str) -> str:
    mac = hmac.new(secret.encode(), f"image\x1f{slot_token}\x1f{image_id}".encode(), hashlib.sha256).digest()
    return f"{slot_token}.{base64.urlsafe_b64encode(mac).decode()[:MAC_CHARS]}"


def split_token(token: str) -> str | None:
    """The slot token a well-formed image token names (ASCII, bounded), else None; nothing else is trusted yet."""
    slot, dot, mac = token.partition(".")
    if not dot or len(mac) != MAC_CHARS or not _PART.fullmatch(slot) or not _PART.fullmatch(mac):
        return None
    return slot


def image_of(secret: str, token: str, image_ids: Sequence[str]) -> str | None:
    """Which of a slot's images ``token`` names (compared in constant time), or None."""
    found = None
    for image_id in image_ids:
        if hmac.compare_digest(image_token(secret, token.partition(".")[0], image_id).encode(), token.encode()):
            found = image_id
    return found


PREVIEW = "preview_"


def preview_slot(round_id: str) -> str:
    """The slot part of the MTurk preview's tokens (the example page is the round's first page)."""
    return PREVIEW + round_id
