"""L_M needs a generic caption per image: an empty ``blip_text`` would make it a pull toward the unconditional
prediction instead. Variants with L_M refuse such records unless captioning is requested."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

SHOWN = 10


def records_without_generic_caption(records: Sequence[Any]) -> list[str]:
    """``file_name`` of each record whose ``blip_text`` is empty or blank."""
    out = []
    for rec in records:
        get = rec.get if isinstance(rec, dict) else lambda k, r=rec: getattr(r, k, None)
        if not str(get("blip_text") or "").strip():
            out.append(str(get("file_name")))
    return out


def require_generic_captions(
    uses_memorization: bool, variant: str, records: Sequence[Any], data_dir: str | Path, caption_requested: bool = False
) -> None:
    """Raise ``ValueError`` (one line, listing the records) when a variant with L_M would train on empty captions."""
    if not uses_memorization or caption_requested:
        return
    missing = records_without_generic_caption(records)
    if not missing:
        return
    shown = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
    raise ValueError(
        f"variant {variant!r} needs a generic caption (blip_text) for L_M, but {len(missing)} record(s) in "
        f"{Path(data_dir) / 'metadata.jsonl'} have none: {shown}; run `python -m scoft caption --captioner DIR "
        f"--data {data_dir}` first or pass --caption-with DIR to `scoft train` (an empty caption would pull toward "
        "the unconditional prediction)"
    )
