"""Designs and manifests as stored with a round (the snapshot, not the file on disk), parsed once per process."""

from __future__ import annotations

import tomllib
from functools import lru_cache

from study_designs.schema import Design, parse_design


@lru_cache(maxsize=32)
def _parse(sha256: str, toml_text: str) -> Design:
    return parse_design(tomllib.loads(toml_text), f"round snapshot {sha256[:12]}")


def round_design(round_) -> Design:  # type: ignore[no-untyped-def]
    """The design a round was launched with."""
    return _parse(round_.design_sha256, round_.design_toml)
