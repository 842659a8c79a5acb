"""Researcher operations shared by the console, the JSON API and ``python -m app.rounds``: launch, exports, status."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from fastapi.responses import Response
from sqlmodel import Session

from app import codebook, console_data, crud, export
from app.config import Settings
from app.db import write
from app.launch import ROUND_ID, LaunchError, LaunchInput, content_problems
from app.launch import launch as launch_round
from app.models import Round

ExportKind = Literal["responses", "participants", "approvals", "snapshot", "codebook"]
EXPORT_MEDIA = {
    "responses": "text/csv",
    "participants": "text/csv",
    "approvals": "text/csv",
    "snapshot": "application/json",
    "codebook": "text/markdown",
}


class LaunchProblems(Exception):
    """Every reason a launch request cannot go ahead (shown all at once)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """A design and a manifest, each given as a server path or as uploaded text (with the uploaded file's name,
    when the client sent one)."""

    round_id: str
    design_path: str | None = None
    design_toml: str | None = None
    manifest_path: str | None = None
    manifest_jsonl: str | None = None
    images_dir: str | None = None
    design_filename: str | None = None
    manifest_filename: str | None = None
    pilot: bool = False  # launch as a pilot round (see ``app.launch.launch``)


def _input_problems(req: LaunchRequest) -> list[str]:
    problems = []
    if not req.round_id:
        problems.append("round id: required")
    elif not ROUND_ID.match(req.round_id):
        problems.append(f"round id {req.round_id!r}: use 1-64 lowercase letters, digits, '-' or '_'")
    for name, path, text in (
        ("design", req.design_path, req.design_toml),
        ("manifest", req.manifest_path, req.manifest_jsonl),
    ):
        if (path is None) == (text is None):
            problems.append(f"{name}: upload a file or give a server path (exactly one of them)")
    for name, path in (("design", req.design_path), ("manifest", req.manifest_path)):
        if path is not None and not Path(path).is_file():
            problems.append(f"{name} {path}: no such file on the server")
    if req.manifest_jsonl is not None and req.images_dir is None:
        problems.append("images folder: required when the manifest is uploaded (its file paths are relative to it)")
    if req.images_dir is not None and not Path(req.images_dir).is_dir():
        problems.append(f"images folder {req.images_dir}: not a folder on the server")
    return problems


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


def upload_name(label: str, filename: str | None) -> str:
    """What messages call an upload: ``design my-study.toml`` (the file's own name, without any folder a client
    may send), or ``uploaded design`` when no name came with it."""
    name = _UNPRINTABLE.sub("", (filename or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()[:120]
    return f"{label} {name}" if name else f"uploaded {label}"


def _source(path: str | None, text: str | None, name: str) -> tuple[bytes | None, str]:
    """An input's bytes and the name messages use for it: the server path, or the upload's ``name``."""
    if text is not None:
        return text.encode("utf-8"), name
    p = Path(str(path))
    return (p.read_bytes() if p.is_file() else None), str(p)


def launch(session: Session, req: LaunchRequest, *, settings: Settings, actor: str, now: datetime) -> Round:
    """Validate and launch a round; raise :class:`LaunchProblems` listing every problem found."""
    problems = _input_problems(req)
    if req.round_id and session.get(Round, req.round_id) is not None:
        problems.insert(0, f"round {req.round_id!r} already exists; choose a new id")
    if any(p.startswith(("design", "manifest")) for p in problems):
        raise LaunchProblems(problems)
    design, design_name = _source(req.design_path, req.design_toml, upload_name("design", req.design_filename))
    manifest, manifest_name = _source(
        req.manifest_path, req.manifest_jsonl, upload_name("manifest", req.manifest_filename)
    )
    images_dir = Path(req.images_dir) if req.images_dir else Path(str(req.manifest_path)).parent
    inp = LaunchInput(req.round_id, design, design_name, manifest, manifest_name, images_dir)
    if problems:
        raise LaunchProblems(problems + content_problems(inp))
    try:
        launch_round(
            session,
            inp,
            media_root=settings.media_root,
            now=console_data.aware_utc(now),
            actor=actor,
            max_pixels=settings.image_max_pixels,
            pilot=req.pilot,
        )
    except LaunchError as err:
        raise LaunchProblems(err.problems) from None
    rnd = session.get(Round, req.round_id)
    assert rnd is not None
    return rnd


def export_text(session: Session, rnd: Round, kind: ExportKind, *, now: datetime) -> str:
    if kind == "snapshot":
        return json.dumps(console_data.snapshot(rnd), indent=2, ensure_ascii=False) + "\n"
    if kind == "codebook":
        return codebook.codebook_md()
    if kind in ("participants", "approvals"):
        data = console_data.load_round_data(session, rnd)
        view = console_data.monitor_view(data, now)
        if kind == "approvals":
            return console_data.approvals_csv(session, data, view)
        return console_data.participants_csv(data, view)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=export.COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(export.response_rows(session, rnd.id))
    return buf.getvalue()


def export_filename(rnd: Round, kind: ExportKind) -> str:
    if kind == "codebook":
        return f"{rnd.id}-codebook.md"
    return f"{rnd.id}-snapshot.json" if kind == "snapshot" else f"{rnd.id}-{kind}.csv"


def audit_export(session: Session, rnd: Round, kind: ExportKind, *, actor: str, now: datetime) -> None:
    with write(session):
        crud.audit(session, at=console_data.aware_utc(now), actor=actor, action="export", round_id=rnd.id, kind=kind)


def export_response(session: Session, rnd: Round, kind: ExportKind, *, actor: str, now: datetime) -> Response:
    """The export as a download; every download is recorded in the audit log (it carries participants' data)."""
    text = export_text(session, rnd, kind, now=now)
    audit_export(session, rnd, kind, actor=actor, now=now)
    return Response(
        content=text,
        media_type=EXPORT_MEDIA[kind],
        headers={
            "Content-Disposition": f'attachment; filename="{export_filename(rnd, kind)}"',
            "Cache-Control": "no-store",
        },
    )
