"""CCUB data: metadata records, downloading a CCUB-style sheet, captioning, the training Dataset, synthetic sets.

A data folder holds ``metadata.jsonl`` (one :class:`Record` per line, paths relative to the folder) and the images.

- ``python -m scoft fetch-ccub --csv SHEET.csv --culture ID --out DIR`` downloads a culture's images.
- ``python -m scoft caption --captioner DIR --data DIR`` fills ``blip_text`` with a local captioning model.
"""

from __future__ import annotations

import argparse
import colorsys
import csv
import dataclasses
import hashlib
import http.client
import io
import json
import random
import sys
import time
import unicodedata
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scoft.files import atomic_write

if TYPE_CHECKING:
    import torch
    from PIL import Image

METADATA_FILE = "metadata.jsonl"
REPORT_FILE = "fetch_report.csv"
IMAGES_DIR = "images"
USER_AGENT = "scoft-fetch/0.1 (research dataset download; +https://github.com/cmubig/SCoFT)"


# --------------------------------------------------------------------------------------------------------------------
# Metadata records
# --------------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------------
# CCUB-style sheets
# --------------------------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------------------------------

ACCEPTED_CONTENT_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
RETRY_HTTP_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})


class FetchError(Exception):
    """A row that could not be turned into an image; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class FetchOptions:
    timeout: float = 20.0
    retries: int = 3
    backoff: float = 1.0
    max_bytes: int = 50 * 1024 * 1024
    min_side: int = 64


def url_stem(url: str) -> str:
    """A stable file stem for an image URL."""
    return hashlib.sha256(url.strip().encode("utf-8")).hexdigest()[:20]


def download_bytes(url: str, options: FetchOptions, *, sleep: Callable[[float], None] = time.sleep) -> bytes:
    """GET ``url`` with timeouts, size limit, content-type check and retries (backoff doubling) on transient errors."""
    last: FetchError | None = None
    for attempt in range(options.retries + 1):
        if attempt:
            sleep(options.backoff * 2 ** (attempt - 1))
        try:
            return _download_once(url, options)
        except FetchError as exc:
            last = exc
            transient = exc.reason in {"timeout", "connection_error", "incomplete"} or (
                exc.reason.startswith("http_") and int(exc.reason[5:]) in RETRY_HTTP_CODES
            )
            if not transient:
                raise
    assert last is not None
    raise last


def _download_once(url: str, options: FetchOptions) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.5"})
    deadline = time.monotonic() + 4 * options.timeout
    try:
        with urllib.request.urlopen(request, timeout=options.timeout) as response:
            content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type and not content_type.startswith(ACCEPTED_CONTENT_TYPES):
                raise FetchError("not_an_image", f"content type {content_type}")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > options.max_bytes:
                raise FetchError("too_large", f"{length} bytes")
            chunks, size = [], 0
            while chunk := response.read(64 * 1024):
                size += len(chunk)
                if size > options.max_bytes:
                    raise FetchError("too_large", f"over {options.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise FetchError("timeout", f"download took over {4 * options.timeout:g} s")
                chunks.append(chunk)
            if length and length.isdigit() and size < int(length):
                raise FetchError("incomplete", f"{size} of {length} bytes")
            return b"".join(chunks)
    except FetchError:
        raise
    except urllib.error.HTTPError as exc:
        raise FetchError(f"http_{exc.code}", str(exc.reason)) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise FetchError("timeout", str(exc.reason)) from exc
        raise FetchError("connection_error", str(exc.reason)) from exc
    except TimeoutError as exc:
        raise FetchError("timeout", str(exc) or "read timed out") from exc
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise FetchError("connection_error", f"{type(exc).__name__}: {exc}") from exc


def decode_image(data: bytes, *, min_side: int = 1) -> tuple[Image.Image, str]:
    """Decode image bytes to RGB (alpha over white, EXIF orientation applied); returns the image and its format."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        image = Image.open(io.BytesIO(data))
        fmt = (image.format or "").upper()
        image.load()
        image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise FetchError("too_large", str(exc)) from exc
    except Exception as exc:  # PIL raises many exception types for bad data
        raise FetchError("decode_error", f"{type(exc).__name__}: {exc}") from exc
    if min(image.size) < min_side:
        raise FetchError("too_small", f"{image.size[0]}x{image.size[1]} < {min_side} px")
    return to_rgb(image), fmt


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL image to a new, loaded RGB image, compositing transparency over white."""
    from PIL import Image

    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def existing_image(out_dir: Path, stem: str) -> str | None:
    """The relative path of an already-downloaded image for ``stem`` if it exists and decodes."""
    from PIL import Image

    for ext in (".jpg", ".png"):
        rel = f"{IMAGES_DIR}/{stem}{ext}"
        path = out_dir / rel
        if path.is_file():
            try:
                with Image.open(path) as img:
                    img.verify()
                return rel
            except Exception:
                path.unlink(missing_ok=True)
    return None


def save_image(image: Image.Image, fmt: str, out_dir: Path, stem: str) -> str:
    """Save as JPEG (when the source was JPEG) or PNG, atomically; returns the path relative to ``out_dir``."""
    ext, save_format, params = (".jpg", "JPEG", {"quality": 95}) if fmt == "JPEG" else (".png", "PNG", {})
    rel = f"{IMAGES_DIR}/{stem}{ext}"
    buffer = io.BytesIO()
    image.save(buffer, format=save_format, **params)
    (out_dir / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / rel, buffer.getvalue())
    return rel


@dataclass(frozen=True)
class RowOutcome:
    row: SheetRow
    file_name: str | None = None
    downloaded: bool = False
    reason: str = ""
    detail: str = ""


def fetch_row(row: SheetRow, out_dir: Path, options: FetchOptions) -> RowOutcome:
    """Make sure ``row``'s image is in ``out_dir/images``; never raises for a bad row."""
    if not row.url:
        return RowOutcome(row, reason="missing_url")
    if not row.url.lower().startswith(("http://", "https://")):
        return RowOutcome(row, reason="bad_url", detail=row.url[:200])
    if not row.caption:
        return RowOutcome(row, reason="missing_caption")
    stem = url_stem(row.url)
    if rel := existing_image(out_dir, stem):
        return RowOutcome(row, file_name=rel)
    try:
        image, fmt = decode_image(download_bytes(row.url, options), min_side=options.min_side)
        return RowOutcome(row, file_name=save_image(image, fmt, out_dir, stem), downloaded=True)
    except FetchError as exc:
        return RowOutcome(row, reason=exc.reason, detail=exc.detail[:300])


@dataclass
class FetchSummary:
    records: list[Record]
    failures: list[RowOutcome]
    downloaded: int = 0
    reused: int = 0
    skipped_other_cultures: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def text(self) -> str:
        lines = [
            f"saved {len(self.records)} images ({self.downloaded} downloaded, {self.reused} already present); "
            f"{len(self.failures)} rows failed; {self.skipped_other_cultures} rows of other cultures skipped"
        ]
        lines += [f"  {reason:<18} {count}" for reason, count in self.reasons.most_common()]
        return "\n".join(lines)


def fetch_ccub(
    sheet: Path | str,
    culture: str,
    out_dir: Path | str,
    options: FetchOptions = FetchOptions(),
    *,
    workers: int = 4,
    country_aliases: Sequence[str] = (),
    progress: bool = True,
) -> FetchSummary:
    """Download ``culture``'s rows of a CCUB-style sheet into ``out_dir`` and write metadata and a failure report.

    Re-running resumes: images already on disk are not downloaded again, and fields filled later (``blip_text``,
    ``negative_imgpath``) of records already in ``metadata.jsonl`` are kept.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    matches = culture_matcher(culture, country_aliases)
    all_rows = read_sheet(sheet)
    rows = [r for r in all_rows if matches(r.country)]
    summary = FetchSummary(records=[], failures=[], skipped_other_cultures=len(all_rows) - len(rows))

    seen: set[str] = set()
    unique: list[SheetRow] = []
    for row in rows:
        if row.url and row.url in seen:
            summary.failures.append(RowOutcome(row, reason="duplicate_url"))
            continue
        seen.add(row.url)
        unique.append(row)

    outcomes: dict[int, RowOutcome] = {}
    with (
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        tqdm(total=len(unique), desc=f"fetch {culture}", unit="img", disable=not progress) as bar,
    ):
        futures = {pool.submit(fetch_row, row, out_dir, options): row.line for row in unique}
        for future in as_completed(futures):
            outcomes[futures[future]] = future.result()
            bar.update(1)

    previous = _previous_records(out_dir)
    for row in unique:
        outcome = outcomes[row.line]
        if outcome.file_name is None:
            summary.failures.append(outcome)
            continue
        summary.downloaded += outcome.downloaded
        summary.reused += not outcome.downloaded
        old = previous.get(outcome.file_name)
        summary.records.append(
            Record(
                file_name=outcome.file_name,
                text=row.caption,
                blip_text=old.blip_text if old else "",
                negative_imgpath=old.negative_imgpath if old else (),
                culture=culture,
                category=row.category,
                source_url=row.url,
                license=row.license,
            )
        )
    summary.failures.sort(key=lambda o: o.row.line)
    summary.reasons.update(o.reason for o in summary.failures)
    write_metadata(out_dir, summary.records)
    _write_report(out_dir / REPORT_FILE, summary.failures)
    return summary


def _previous_records(out_dir: Path) -> dict[str, Record]:
    if not (out_dir / METADATA_FILE).is_file():
        return {}
    try:
        return {rec.file_name: rec for rec in read_metadata(out_dir)}
    except ValueError:
        return {}


def _write_report(path: Path, failures: Sequence[RowOutcome]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", "country", "category", "url", "reason", "detail"])
    for o in failures:
        writer.writerow([o.row.line, o.row.country, o.row.category, o.row.url, o.reason, o.detail])
    atomic_write(path, buffer.getvalue().encode("utf-8"))


def fetch_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scoft fetch-ccub", description="Download one culture's images of a CCUB-style sheet."
    )
    parser.add_argument("--csv", type=Path, required=True, help="sheet with columns country, category, url, caption")
    parser.add_argument("--culture", required=True, help="culture id (e.g. korea); ISO codes and names also match")
    parser.add_argument("--out", type=Path, required=True, help="data folder (images/, metadata.jsonl)")
    parser.add_argument("--country", action="append", default=[], help="extra country cell value to match")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds without data before giving up")
    parser.add_argument("--retries", type=int, default=3, help="retries on timeouts, connection and 5xx errors")
    parser.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds (then doubling)")
    parser.add_argument("--workers", type=int, default=4, help="parallel downloads")
    parser.add_argument("--min-side", type=int, default=64, help="reject images smaller than this (px)")
    parser.add_argument("--max-mb", type=float, default=50.0, help="reject downloads larger than this")
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.retries < 0 or args.workers < 1 or args.backoff < 0:
        parser.error("--timeout must be > 0, --retries and --backoff >= 0, --workers >= 1")
    options = FetchOptions(
        timeout=args.timeout,
        retries=args.retries,
        backoff=args.backoff,
        max_bytes=int(args.max_mb * 1024 * 1024),
        min_side=args.min_side,
    )
    try:
        summary = fetch_ccub(
            args.csv, args.culture, args.out, options, workers=args.workers, country_aliases=args.country
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.text())
    if summary.failures:
        print(f"failed rows: {args.out / REPORT_FILE}")
    print(f"metadata: {args.out / METADATA_FILE}")
    return 0


# --------------------------------------------------------------------------------------------------------------------
# Captioning
# --------------------------------------------------------------------------------------------------------------------


def load_captioner(path: Path | str, *, device: str = "cpu", dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    """Load a local image-to-text model (BLIP, BLIP-2, GIT, ...) and its processor, in eval mode."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no captioning model at {path} (expected a transformers folder with config.json)")
    processor = AutoProcessor.from_pretrained(path)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    return model.to(device).eval(), processor


def caption_images(model: Any, processor: Any, images: Sequence[Image.Image], *, max_new_tokens: int = 30) -> list[str]:
    """Generic captions of ``images`` (one string each, whitespace-normalised)."""
    import torch

    inputs = processor(images=list(images), return_tensors="pt")
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    inputs = {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in inputs.items()}
    with torch.inference_mode():
        ids = model.generate(**inputs, max_new_tokens=max_new_tokens)
    return [" ".join(text.split()) for text in processor.batch_decode(ids, skip_special_tokens=True)]


def caption_dataset(
    data_dir: Path | str,
    model: Any,
    processor: Any,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 30,
    force: bool = False,
    progress: bool = True,
) -> int:
    """Fill ``blip_text`` of the records that lack it (all with ``force``); metadata is rewritten after every batch.

    Returns the number of records captioned.
    """
    from PIL import Image
    from tqdm import tqdm

    data_dir = Path(data_dir)
    records = read_metadata(data_dir)
    todo = [i for i, rec in enumerate(records) if force or not rec.blip_text.strip()]
    with tqdm(total=len(todo), desc="caption", unit="img", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            images = []
            for i in batch:
                with Image.open(resolve_path(data_dir, records[i].file_name)) as img:
                    images.append(to_rgb(img))
            texts = caption_images(model, processor, images, max_new_tokens=max_new_tokens)
            for i, text in zip(batch, texts, strict=True):
                records[i] = dataclasses.replace(records[i], blip_text=text)
            write_metadata(data_dir, records)
            bar.update(len(batch))
    return len(todo)


def caption_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scoft caption", description="Fill blip_text in metadata.jsonl with a local captioning model."
    )
    parser.add_argument("--captioner", type=Path, required=True, help="local transformers image-to-text folder")
    parser.add_argument("--data", type=Path, required=True, help="data folder with metadata.jsonl")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda or cpu")
    parser.add_argument("--fp16", action="store_true", help="run the captioner in half precision")
    parser.add_argument("--max-new-tokens", type=int, default=30)
    parser.add_argument("--force", action="store_true", help="re-caption records that already have blip_text")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.max_new_tokens < 1:
        parser.error("--batch-size and --max-new-tokens must be >= 1")
    try:
        import torch

        model, processor = load_captioner(
            args.captioner, device=args.device, dtype=torch.float16 if args.fp16 else None
        )
        count = caption_dataset(
            args.data,
            model,
            processor,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            force=args.force,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"captioned {count} images in {args.data / METADATA_FILE}")
    return 0


# --------------------------------------------------------------------------------------------------------------------
# Training dataset
# --------------------------------------------------------------------------------------------------------------------


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    from PIL import Image

    w, h = image.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    return image if new == (w, h) else image.resize(new, Image.Resampling.BILINEAR)


def crop_box(width: int, height: int, size: int, fx: float, fy: float) -> tuple[int, int, int, int]:
    """A ``size`` square at relative offset (fx, fy) in [0, 1] of the free space (0.5, 0.5 = centre)."""
    left = round((width - size) * fx)
    top = round((height - size) * fy)
    return left, top, left + size, top + size


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 CHW tensor in [-1, 1]."""
    import numpy as np
    import torch

    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


class CCUBDataset:
    """CCUB images with their captions and negatives, transformed as Stable Diffusion training expects.

    Each item: ``pixel_values`` (3×R×R in [-1, 1]), ``negative_pixel_values`` (K×3×R×R, K may be 0), ``text``,
    ``blip_text``, ``file_name``, ``culture`` and, with a tokenizer, ``input_ids`` / ``blip_input_ids``.
    The random crop uses the same relative offset for the positive and its negatives (their layouts match); the flip
    is shared when ``joint_flip`` and drawn per image otherwise. Randomness depends on (seed, epoch, index) only, so
    results do not depend on worker processes; call :meth:`set_epoch` to vary it between epochs.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        resolution: int = 512,
        center_crop: bool = True,
        random_flip: bool = True,
        joint_flip: bool = True,
        tokenizer: Any = None,
        max_negatives: int | None = None,
        seed: int = 0,
        records: Sequence[Record] | None = None,
    ) -> None:
        if resolution < 1:
            raise ValueError("resolution must be positive")
        if max_negatives is not None and max_negatives < 0:
            raise ValueError("max_negatives must be >= 0")
        self.data_dir = Path(data_dir)
        self.records = list(read_metadata(self.data_dir) if records is None else records)
        if not self.records:
            raise ValueError(f"no records in {self.data_dir / METADATA_FILE}")
        self.resolution = resolution
        self.center_crop = center_crop
        self.random_flip = random_flip
        self.joint_flip = joint_flip
        self.tokenizer = tokenizer
        self.max_negatives = max_negatives
        self.seed = seed
        self.epoch = 0
        missing = [
            str(path)
            for rec in self.records
            for path in (resolve_path(self.data_dir, p) for p in (rec.file_name, *rec.negative_imgpath))
            if not path.is_file()
        ]
        if missing:
            raise FileNotFoundError(f"{len(missing)} image file(s) listed in metadata are missing, e.g. {missing[:3]}")

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def negatives_of(self, record: Record) -> tuple[str, ...]:
        return record.negative_imgpath if self.max_negatives is None else record.negative_imgpath[: self.max_negatives]

    def _load(self, name: str, offset: tuple[float, float], flip: bool) -> torch.Tensor:
        from PIL import Image

        with Image.open(resolve_path(self.data_dir, name)) as img:
            image = resize_shorter_side(to_rgb(img), self.resolution)
        image = image.crop(crop_box(*image.size, self.resolution, *offset))
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image_to_tensor(image)

    def _tokenize(self, text: str) -> torch.Tensor:
        return self.tokenizer(
            text,
            padding="max_length",
            truncation=True,
            max_length=self.tokenizer.model_max_length,
            return_tensors="pt",
        ).input_ids[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        record = self.records[index]
        rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
        offset = (0.5, 0.5) if self.center_crop else (rng.random(), rng.random())
        negatives = self.negatives_of(record)
        flips = [self.random_flip and rng.random() < 0.5]
        for _ in negatives:
            flips.append(flips[0] if self.joint_flip else (self.random_flip and rng.random() < 0.5))
        pixel_values = self._load(record.file_name, offset, flips[0])
        if negatives:
            negative_pixel_values = torch.stack(
                [self._load(n, offset, f) for n, f in zip(negatives, flips[1:], strict=True)]
            )
        else:
            negative_pixel_values = pixel_values.new_zeros((0, *pixel_values.shape))
        item: dict[str, Any] = {
            "pixel_values": pixel_values,
            "negative_pixel_values": negative_pixel_values,
            "text": record.text,
            "blip_text": record.blip_text,
            "file_name": record.file_name,
            "culture": record.culture,
            "flipped": flips[0],
        }
        if self.tokenizer is not None:
            item["input_ids"] = self._tokenize(record.text)
            item["blip_input_ids"] = self._tokenize(record.blip_text)
        return item


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch dataset items; negatives are padded with zeros to the largest K and ``negative_mask`` marks real ones."""
    import torch

    if not items:
        raise ValueError("cannot collate an empty batch")
    batch: dict[str, Any] = {"pixel_values": torch.stack([it["pixel_values"] for it in items])}
    counts = [it["negative_pixel_values"].shape[0] for it in items]
    k = max(counts)
    shape = items[0]["pixel_values"].shape
    negatives = torch.zeros((len(items), k, *shape), dtype=batch["pixel_values"].dtype)
    mask = torch.zeros((len(items), k), dtype=torch.bool)
    for i, (it, n) in enumerate(zip(items, counts, strict=True)):
        negatives[i, :n] = it["negative_pixel_values"]
        mask[i, :n] = True
    batch["negative_pixel_values"] = negatives
    batch["negative_mask"] = mask
    for key in ("input_ids", "blip_input_ids"):
        if key in items[0]:
            batch[key] = torch.stack([it[key] for it in items])
    for key in ("text", "blip_text", "file_name", "culture", "flipped"):
        batch[key] = [it[key] for it in items]
    return batch


# --------------------------------------------------------------------------------------------------------------------
# Synthetic CCUB-like sets
# --------------------------------------------------------------------------------------------------------------------

SYNTH_HUES = {"china": 0.0, "india": 0.08, "korea": 0.6, "mexico": 0.33, "nigeria": 0.16}
SYNTH_SHAPES = ("circle", "square", "triangle", "stripe")
SYNTH_CATEGORIES = ("ARCH", "CLOTH", "FOOD", "DANCE", "PEOPLE", "CITIES", "RELIG")
CATEGORY_WORDS = {
    "ARCH": "a building",
    "CLOTH": "traditional clothing",
    "FOOD": "a dish",
    "DANCE": "a dance",
    "PEOPLE": "people",
    "CITIES": "a city street",
    "RELIG": "a temple",
}


def hash_index(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _culture_hue(culture: str) -> float:
    key = culture.lower()
    if key in SYNTH_HUES:
        return SYNTH_HUES[key]
    return hash_index(key) / 0xFFFFFFFF


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def draw_synthetic(culture: str, index: int, resolution: int, seed: int) -> tuple[Image.Image, str, str]:
    """One procedurally drawn image in the culture's palette; returns (image, shape, category)."""
    from PIL import Image, ImageDraw

    rng = random.Random(f"{seed}:{culture}:{index}")
    hue = _culture_hue(culture)
    shape = SYNTH_SHAPES[(hash_index(culture) + index) % len(SYNTH_SHAPES)]
    category = SYNTH_CATEGORIES[index % len(SYNTH_CATEGORIES)]
    background = _rgb(hue, 0.35, 0.92)
    image = Image.new("RGB", (resolution, resolution), background)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 5)):
        accent = rng.random() < 0.25
        colour = _rgb(hue + (0.5 if accent else rng.uniform(-0.04, 0.04)), rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.0))
        size = rng.uniform(0.2, 0.5) * resolution
        x, y = rng.uniform(0, resolution - size), rng.uniform(0, resolution - size)
        if shape == "circle":
            draw.ellipse((x, y, x + size, y + size), fill=colour)
        elif shape == "square":
            draw.rectangle((x, y, x + size, y + size), fill=colour)
        elif shape == "triangle":
            draw.polygon([(x, y + size), (x + size / 2, y), (x + size, y + size)], fill=colour)
        else:
            draw.rectangle((0, y, resolution, y + size / 3), fill=colour)
    return image, shape, category


def synthesize_ccub(
    out_dir: Path | str,
    *,
    culture: str,
    n_images: int,
    resolution: int = 64,
    seed: int = 0,
    with_blip_text: bool = True,
) -> list[Record]:
    """Write a small CCUB-like set (PNG drawings in a per-culture palette, captions, metadata.jsonl) to ``out_dir``."""
    if n_images < 1 or resolution < 8:
        raise ValueError("n_images must be >= 1 and resolution >= 8")
    out_dir = Path(out_dir)
    (out_dir / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    label = culture.replace("_", " ").title()
    records = []
    for index in range(n_images):
        image, shape, category = draw_synthetic(culture, index, resolution, seed)
        rel = f"{IMAGES_DIR}/{culture}_{index:04d}.png"
        image.save(out_dir / rel)
        records.append(
            Record(
                file_name=rel,
                text=f"{CATEGORY_WORDS[category]} in {label}, drawn as {shape}s",
                blip_text=f"a picture of {shape}s" if with_blip_text else "",
                culture=culture,
                category=category,
                source_url="",
                license="CC0-1.0",
            )
        )
    write_metadata(out_dir, records)
    return records
