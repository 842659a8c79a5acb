"""CCUB-style sheets: a CSV/TSV of (country, category, url, caption[, license]) rows, headers matched loosely."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "country": ("country", "countrycode", "country_code", "culture", "nation", "region"),
    "category": ("category", "categorycode", "category_code", "type", "class"),
    "url": ("url", "imageurl", "image_url", "link", "imagelink", "image_link", "image", "img_url"),
    "caption": ("caption", "text", "description", "prompt"),
    "license": ("license", "licence", "license_url", "licenseurl"),
}
REQUIRED_COLUMNS = ("country", "url", "caption")
CULTURE_ALIASES: dict[str, tuple[str, ...]] = {
    "china": ("cn", "chn", "china", "chinese", "prc", "people's republic of china"),
    "india": ("in", "ind", "india", "indian"),
    "korea": ("kr", "kor", "korea", "korean", "south korea", "republic of korea"),
    "mexico": ("mx", "mex", "mexico", "mexican"),
    "nigeria": ("ng", "nga", "nigeria", "nigerian"),
}


@dataclass(frozen=True)
class SheetRow:
    """One row of a CCUB-style sheet (``line`` is its line number in the file, header = 1)."""

    line: int
    country: str
    category: str
    url: str
    caption: str
    license: str = ""


def _norm(value: str) -> str:
    text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return " ".join(text.lower().split())


def _norm_header(value: str) -> str:
    return _norm(value).replace(" ", "_").replace("-", "_")


def culture_matcher(culture: str, extra: Sequence[str] = ()) -> Callable[[str], bool]:
    """A predicate telling whether a sheet's country cell belongs to ``culture`` (ids, ISO codes, names)."""
    key = _norm(culture)
    names = {key, *(_norm(a) for a in CULTURE_ALIASES.get(key, ())), *(_norm(e) for e in extra)}
    return lambda value: _norm(value) in names


def read_sheet(path: Path | str) -> list[SheetRow]:
    """Read a CCUB-style CSV/TSV sheet; headers are matched case- and space-insensitively with common aliases."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sheet not found: {path}")
    text = path.read_text(encoding="utf-8-sig")
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader, None)
    if not header:
        raise ValueError(f"{path} is empty")
    normalised = [_norm_header(h) for h in header]
    columns: dict[str, int] = {}
    for name, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in normalised:
                columns[name] = normalised.index(alias)
                break
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {header}")

    def cell(row: list[str], name: str) -> str:
        index = columns.get(name)
        return row[index].strip() if index is not None and index < len(row) else ""

    rows = []
    for offset, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        rows.append(
            SheetRow(
                line=offset,
                country=cell(row, "country"),
                category=cell(row, "category"),
                url=cell(row, "url"),
                caption=cell(row, "caption"),
                license=cell(row, "license"),
            )
        )
    return rows
