"""What never changes in a launched round, read once per process: its design (the snapshot stored with the round,
not the file on disk) and its images.

Rounds are read without their large text snapshots (``design_toml``, ``manifest_json``); the design text is
fetched only the first time a process meets a design hash. A round's images are keyed by the round's launch
(``Round.secret`` is drawn anew at every launch, so a round deleted and launched again under the same id is a new
entry and the old one is never served).
"""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import defer
from sqlmodel import Session, select

from app.models import Round, RoundImage
from study_designs.schema import Design, parse_design

_CACHE: dict[str, Design] = {}
_GUARD = threading.Lock()
_IMAGES: dict[tuple[str, str], Mapping[str, StoredImage]] = {}
_MAX_ROUNDS = 64


@dataclass(frozen=True, slots=True)
class StoredImage:
    """One image of a launched round, as the participant routes need it (never shown: ``model_id``, ``path``)."""

    image_id: str
    culture: str
    prompt_id: str
    page_id: str
    model_id: str
    path: str  # MEDIA_ROOT-relative
    width: int | None
    height: int | None


def round_images(session: Session, round_id: str, launch_key: str) -> Mapping[str, StoredImage]:
    """Image id -> image of a round, read from the database the first time this process meets the round's launch
    (``launch_key``: its ``Round.secret``)."""
    key = (round_id, launch_key)
    found = _IMAGES.get(key)
    if found is not None:
        return found
    rows = session.exec(
        select(
            RoundImage.image_id,
            RoundImage.culture,
            RoundImage.prompt_id,
            RoundImage.page_id,
            RoundImage.model_id,
            RoundImage.path,
            RoundImage.width,
            RoundImage.height,
        ).where(RoundImage.round_id == round_id)
    ).all()
    images = {r[0]: StoredImage(*r) for r in rows}
    if images:  # a round being launched (no images yet) is not remembered
        with _GUARD:
            if len(_IMAGES) >= _MAX_ROUNDS:
                _IMAGES.clear()
            _IMAGES[key] = images
    return images


def page_image_ids(images: Mapping[str, StoredImage], page_id: str) -> list[str]:
    """The ids of one page's images (one per model), in the order the round stored them."""
    return [image_id for image_id, im in images.items() if im.page_id == page_id]


def _parse(sha256: str, toml_text: str) -> Design:
    design = parse_design(tomllib.loads(toml_text), f"round snapshot {sha256[:12]}")
    with _GUARD:
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[sha256] = design
    return design


def get_round(session: Session, round_id: str, *, for_update: bool = False) -> Round | None:
    """The round row without its snapshot texts (they load on first access); None for an id no round can have."""
    if len(round_id) > 64 or "\x00" in round_id:
        return None
    q = select(Round).where(Round.id == round_id).options(defer(Round.design_toml), defer(Round.manifest_json))
    if for_update:
        q = q.with_for_update()
    return session.exec(q).first()


def round_status_and_design(session: Session, round_id: str) -> tuple[str, Design] | None:
    """A round's status and design, reading the design text only on a cache miss (the hot path of submissions)."""
    row = session.exec(select(Round.status, Round.design_sha256).where(Round.id == round_id)).first()
    if row is None:
        return None
    status, sha = row
    design = _CACHE.get(sha)
    if design is None:
        text = session.exec(select(Round.design_toml).where(Round.id == round_id)).one()
        design = _parse(sha, text)
    return status, design


def round_design(round_: Round) -> Design:
    """The design a round was launched with."""
    cached = _CACHE.get(round_.design_sha256)
    return cached if cached is not None else _parse(round_.design_sha256, round_.design_toml)


def design_by_hash(session: Session, round_id: str, sha256: str) -> Design:
    """The design of a round whose ``design_sha256`` is known, reading its text only on a cache miss."""
    design = _CACHE.get(sha256)
    if design is None:
        text = session.exec(select(Round.design_toml).where(Round.id == round_id)).one()
        design = _parse(sha256, text)
    return design
