"""Round launch: validate a manifest against its design, store blinded copies of the images, create the round."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session
from tqdm import tqdm

from app.db import write
from app.images import DEFAULT_MAX_PIXELS, ImageError, canonical_png, page_size_problems
from app.models import AuditLog, Round, RoundImage, RoundPage
from study_designs.schema import Design, DesignError, page_id, parse_design

REQUIRED = ("image_id", "file", "sha256", "model_id", "culture", "prompt_id", "seed")
ROUND_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


class LaunchError(Exception):
    """The round cannot be launched; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class LaunchResult:
    round_id: str
    created: bool
    n_images: int
    n_pages: int


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parse_manifest(data: bytes | None, name: str) -> tuple[list[dict], list[str]]:
    """Entries of a manifest given as bytes (None: no such file); problems are named ``{name}:{line}``."""
    entries: list[dict] = []
    problems: list[str] = []
    if data is None:
        return [], [f"{name}: no such manifest file"]
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return [], [f"{name}: not UTF-8 text"]
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"{name}:{n}: not valid JSON ({err.msg})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{name}:{n}: expected a JSON object")
            continue
        missing = [k for k in REQUIRED if k not in obj]
        if missing:
            problems.append(f"{name}:{n}: missing field(s) {', '.join(missing)}")
            continue
        obj["_line"] = n
        entries.append(obj)
    if not entries and not problems:
        problems.append(f"{name}: the manifest has no images")
    return entries, problems


def parse_design_bytes(data: bytes, name: str) -> Design:
    """A design given as bytes; problems raise :class:`DesignError` naming ``name``."""
    try:
        return parse_design(tomllib.loads(data.decode("utf-8")), name)
    except UnicodeDecodeError:
        raise DesignError(f"{name}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise DesignError(f"{name}: not valid TOML: {err}") from None


@dataclass(frozen=True, slots=True)
class LaunchInput:
    """A design and a manifest as bytes, with the names problems call them by (a path, or "design my-study.toml")."""

    round_id: str
    design: bytes | None  # None: no such design file
    design_name: str
    manifest: bytes | None  # None: no such manifest file
    manifest_name: str
    images_dir: Path  # the manifest's ``file`` paths are relative to it


def content_problems(inp: LaunchInput) -> list[str]:
    """Every design and manifest problem, as the launch finds them (to list everything at once)."""
    if inp.design is None:
        return [f"{inp.design_name}: no such design file"]
    try:
        design = parse_design_bytes(inp.design, inp.design_name)
    except DesignError as err:
        return str(err).splitlines()
    entries, problems = parse_manifest(inp.manifest, inp.manifest_name)
    return problems + (validate_manifest(design, entries, inp.images_dir) if entries else [])


def validate_manifest(design: Design, entries: list[dict], base: Path, *, check_files: bool = True) -> list[str]:
    """Every problem: unknown models/pages, not exactly one image per model per page, missing files, bad hashes."""
    problems: list[str] = []
    models = {m.id for m in design.models}
    pages = {p.id: p for p in design.pages()}
    prompts = {p.id: p for p in design.prompts}
    ids = Counter(str(e["image_id"]) for e in entries)
    problems += [f"image_id {i!r} appears {n} times" for i, n in sorted(ids.items()) if n > 1]
    per_page: dict[str, Counter[str]] = defaultdict(Counter)
    for e in entries:
        where = f"line {e['_line']} (image {e['image_id']})"
        if e["model_id"] not in models:
            problems.append(f"{where}: model {e['model_id']!r} is not in the design")
        prompt = prompts.get(e["prompt_id"])
        if prompt is None:
            problems.append(f"{where}: prompt {e['prompt_id']!r} is not in the design")
            continue
        if e["culture"] != prompt.culture:
            problems.append(f"{where}: culture {e['culture']!r} but prompt {prompt.id!r} belongs to {prompt.culture!r}")
        if not isinstance(e["seed"], int) or e["seed"] not in prompt.seeds:
            problems.append(f"{where}: seed {e['seed']!r} is not one of prompt {prompt.id!r}'s seeds")
            continue
        per_page[page_id(prompt.id, e["seed"])][e["model_id"]] += 1
    for pid, page in pages.items():
        counts = per_page.get(pid, Counter())
        for m in sorted(models):
            if counts[m] == 0:
                problems.append(
                    f"page {pid} ({page.culture}, prompt {page.prompt_id}, seed {page.seed}): no image for model {m!r}"
                )
            elif counts[m] > 1:
                problems.append(
                    f"page {pid} ({page.culture}, prompt {page.prompt_id}, seed {page.seed}): "
                    f"{counts[m]} images for model {m!r}"
                )
    if check_files:
        for e in tqdm(entries, desc="checking images", unit="img", leave=False, disable=len(entries) < 200):
            f = base / str(e["file"])
            if not f.is_file():
                problems.append(f"line {e['_line']} (image {e['image_id']}): file {e['file']} does not exist")
            elif sha256_file(f) != e["sha256"]:
                problems.append(f"line {e['_line']} (image {e['image_id']}): sha256 of {e['file']} does not match")
    return problems


def _store_images(
    entries: list[dict], base: Path, folder: Path, round_id: str, now: datetime, max_pixels: int
) -> tuple[list[RoundImage], list[str]]:
    """Canonical copies of every image under random tokens, and every problem (named by manifest line and file).

    Images are stored in an order drawn afresh for each launch (a keyed hash with a random key), not in manifest
    order, so row ids and file times say nothing about the model; every file gets the launch time as its mtime.
    """
    key = secrets.token_bytes(16)
    shuffled = sorted(entries, key=lambda e: hmac.new(key, str(e["image_id"]).encode(), "sha256").digest())
    rows: list[RoundImage] = []
    problems: list[str] = []
    sizes: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    stamp = now.timestamp()
    for e in tqdm(shuffled, desc=f"storing round {round_id}", unit="img", disable=len(entries) < 200):
        where = f"line {e['_line']} (image {e['image_id']}, file {e['file']})"
        try:
            data, width, height = canonical_png((base / e["file"]).read_bytes(), max_pixels=max_pixels)
        except ImageError as err:
            problems.append(f"{where}: {err}")
            continue
        pid = page_id(e["prompt_id"], e["seed"])
        sizes[pid].append((str(e["file"]), width, height))
        token = secrets.token_urlsafe(18)
        path = folder / f"{token}.png"
        path.write_bytes(data)
        os.utime(path, (stamp, stamp))
        rows.append(
            RoundImage(
                round_id=round_id,
                image_id=str(e["image_id"]),
                token=token,
                model_id=e["model_id"],
                culture=e["culture"],
                prompt_id=e["prompt_id"],
                seed=e["seed"],
                page_id=pid,
                sha256=e["sha256"],
                path=f"{round_id}/{token}.png",
                width=width,
                height=height,
            )
        )
    problems.sort(key=lambda p: int(p.split()[1]))  # manifest order, whatever order the images were read in
    return rows, problems + page_size_problems(sizes)


def launch_round(
    session: Session,
    *,
    design_path: Path,
    manifest_path: Path,
    round_id: str,
    media_root: Path,
    now: datetime,
    reuse: bool = False,
    actor: str = "cli",
    images_dir: Path | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pilot: bool = False,
) -> LaunchResult:
    """Validate and create round ``round_id`` from files. With ``reuse``, an identical existing round is left as it is.

    Image ``file`` paths are relative to ``images_dir`` (default: the manifest's folder). Every image is
    re-encoded into the canonical PNG form; images over ``max_pixels``, undecodable ones and pages whose images
    differ in pixel size are refused, each named.
    """
    inp = LaunchInput(
        round_id=round_id,
        design=design_path.read_bytes() if design_path.is_file() else None,
        design_name=str(design_path),
        manifest=manifest_path.read_bytes() if manifest_path.is_file() else None,
        manifest_name=str(manifest_path),
        images_dir=images_dir if images_dir is not None else manifest_path.parent,
    )
    return launch(
        session, inp, media_root=media_root, now=now, reuse=reuse, actor=actor, max_pixels=max_pixels, pilot=pilot
    )


def launch(
    session: Session,
    inp: LaunchInput,
    *,
    media_root: Path,
    now: datetime,
    reuse: bool = False,
    actor: str = "cli",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pilot: bool = False,
) -> LaunchResult:
    """Validate and create a round from in-memory design and manifest bytes: the one launch path (CLI and console).

    ``pilot``: everyone who enters the round is a pilot participant until the round is promoted."""
    round_id, base = inp.round_id, inp.images_dir
    if not ROUND_ID.match(round_id):
        raise LaunchError([f"round id {round_id!r}: use 1-64 lowercase letters, digits, '-' or '_'"])
    if inp.design is None:
        raise LaunchError([f"{inp.design_name}: no such design file"])
    try:
        design = parse_design_bytes(inp.design, inp.design_name)
    except DesignError as err:
        raise LaunchError(str(err).splitlines()) from None
    design_bytes, manifest_bytes = inp.design, inp.manifest or b""
    design_sha = hashlib.sha256(design_bytes).hexdigest()
    manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
    existing = session.get(Round, round_id)
    if existing is not None:
        if not reuse:
            raise LaunchError([f"round {round_id!r} already exists; pass --reuse to keep it or choose a new id"])
        if (existing.design_sha256, existing.manifest_sha256) == (design_sha, manifest_sha):
            return LaunchResult(round_id, False, 0, len(design.pages()))
        raise LaunchError(
            [
                f"round {round_id!r} already exists with a different design or manifest "
                f"(stored design {existing.design_sha256[:12]}, manifest {existing.manifest_sha256[:12]}; "
                f"given design {design_sha[:12]}, manifest {manifest_sha[:12]}); "
                f"launch the new images under a new round id"
            ]
        )
    entries, problems = parse_manifest(inp.manifest, inp.manifest_name)
    problems += validate_manifest(design, entries, base) if entries else []
    if problems:
        raise LaunchError(problems)

    folder = media_root / round_id
    folder.mkdir(parents=True, exist_ok=True)
    rows, problems = _store_images(entries, base, folder, round_id, now, max_pixels)
    if problems:
        for r in rows:
            (media_root / r.path).unlink(missing_ok=True)
        raise LaunchError(problems)
    clean = [{k: v for k, v in e.items() if k != "_line"} for e in entries]
    with write(session):
        session.add(
            Round(
                id=round_id,
                design_id=design.id,
                design_toml=design_bytes.decode("utf-8"),
                design_sha256=design_sha,
                manifest_json=json.dumps(clean),
                manifest_sha256=manifest_sha,
                status="open",
                created_at=now,
                pilot=pilot,
            )
        )
        session.flush()
        for p in design.pages():
            session.add(
                RoundPage(round_id=round_id, page_id=p.id, culture=p.culture, prompt_id=p.prompt_id, seed=p.seed)
            )
        session.add_all(rows)
        session.add(
            AuditLog(
                at=now,
                actor=actor,
                action="launch",
                round_id=round_id,
                detail={"design": design.id, "design_sha256": design_sha, "images": len(rows), "pilot": pilot},
            )
        )
    return LaunchResult(round_id, True, len(rows), len(design.pages()))
