"""Designs as stored with a round (the snapshot, not the file on disk), parsed once per process.

Rounds are read without their large text snapshots (``design_toml``, ``manifest_json``); the design text is
fetched only the first time a process meets a design hash.
"""

from __future__ import annotations

import threading
import tomllib

from sqlalchemy.orm import defer
from sqlmodel import Session, select

from app.models import Round
from study_designs.schema import Design, parse_design

_CACHE: dict[str, Design] = {}
_GUARD = threading.Lock()


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
