"""Metadata records: one :class:`Record` per training image in ``DATA/metadata.jsonl`` (paths relative to it)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoft.files import atomic_write

METADATA_FILE = "metadata.jsonl"
IMAGES_DIR = "images"


@dataclass(frozen=True)
class Record:
    """One training image. Paths are relative to the data folder (absolute paths are kept as they are)."""

    file_name: str
    text: str
    blip_text: str = ""
    negative_imgpath: tuple[str, ...] = ()
    culture: str = ""
    category: str = ""
    source_url: str = ""
    license: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["negative_imgpath"] = list(self.negative_imgpath)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        if not isinstance(data, dict):
            raise ValueError(f"a metadata line must be a JSON object, got {type(data).__name__}")
        missing = [key for key in ("file_name", "text") if not isinstance(data.get(key), str)]
        if missing:
            raise ValueError(f"metadata record lacks string field(s) {missing}: {data!r:.200}")
        negatives = data.get("negative_imgpath") or []
        if isinstance(negatives, str):
            negatives = [negatives]
        return cls(
            file_name=data["file_name"],
            text=data["text"],
            blip_text=str(data.get("blip_text") or ""),
            negative_imgpath=tuple(str(p) for p in negatives),
            culture=str(data.get("culture") or ""),
            category=str(data.get("category") or ""),
            source_url=str(data.get("source_url") or ""),
            license=str(data.get("license") or ""),
        )


def resolve_path(data_dir: Path, name: str) -> Path:
    """The file a record path points to: relative paths are taken from the data folder."""
    path = Path(name)
    return path if path.is_absolute() else Path(data_dir) / path


def read_metadata(data_dir: Path | str) -> list[Record]:
    """Read ``DATA_DIR/metadata.jsonl`` (blank lines ignored); errors name the line."""
    path = Path(data_dir) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {METADATA_FILE} in {data_dir}")
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                records.append(Record.from_dict(json.loads(line)))
            except (json.JSONDecodeError, ValueError) as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from exc
    return records


def write_metadata(data_dir: Path | str, records: Iterable[Record]) -> Path:
    """Write ``DATA_DIR/metadata.jsonl`` atomically (a temporary file replaces the old one)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(rec.to_dict(), ensure_ascii=False) + "\n" for rec in records]
    return atomic_write(data_dir / METADATA_FILE, "".join(lines).encode("utf-8"))
