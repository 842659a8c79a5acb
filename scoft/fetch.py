"""``python -m scoft fetch-ccub --csv SHEET.csv --culture ID --out DIR``: download one culture's images of a sheet."""

from __future__ import annotations

import argparse
import csv
import hashlib
import http.client
import io
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from scoft.cli import error
from scoft.files import atomic_write
from scoft.images import to_rgb
from scoft.records import IMAGES_DIR, METADATA_FILE, Record, read_metadata, write_metadata
from scoft.sheet import SheetRow, culture_matcher, read_sheet

if TYPE_CHECKING:
    from PIL import Image

REPORT_FILE = "fetch_report.csv"
USER_AGENT = "scoft-fetch/0.1 (research dataset download; +https://github.com/cmubig/SCoFT)"

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
        return error(parser.prog, exc)
    print(summary.text())
    if summary.failures:
        print(f"failed rows: {args.out / REPORT_FILE}")
    print(f"metadata: {args.out / METADATA_FILE}")
    return 0
