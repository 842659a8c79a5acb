"""Blinding audit: crawl every participant page and image of a round and find no model id, model label, file name
or seed in any URL, header, HTML or image byte, even when the source PNGs carry all of them in text chunks."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from sqlmodel import select

from app.blinding import image_of
from app.config import Settings
from app.db import session_scope
from app.images import png_chunks
from app.launch import launch_round
from app.main import create_app
from app.models import Assignment, Round, RoundImage
from app.placeholder import write_placeholders
from study_designs.schema import load_design
from tests.factories import NO_ENROL_LIMIT, crawl_participant
from tests.security.support import Spec, write_design

MODELS = (("mdlxalpha", "Zeta Generator Q7"), ("mdlxbravo", "Omega Diffuser K2"), ("mdlxcharlie", "Sigma Painter V9"))
SEEDS = (8675309111, 8675309333)
TEXT_CHUNKS = {b"tEXt", b"iTXt", b"zTXt", b"tIME", b"eXIf"}


def _tag_sources(manifest: Path) -> list[dict]:
    """Write every identifying fact into the source PNGs' metadata, as a careless sampler might."""
    entries = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    for e in entries:
        path = manifest.parent / e["file"]
        info = PngInfo()
        info.add_text("model", f"{e['model_id']} seed={e['seed']} file={e['file']}")
        info.add_itxt("parameters", f"prompt_id={e['prompt_id']} seed={e['seed']} model={e['model_id']}")
        with Image.open(path) as im:
            im.load()
            im.save(path, format="PNG", pnginfo=info)
        e["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return entries


def test_no_participant_response_reveals_models_files_or_seeds(tmp_path):
    design_path = write_design(Spec(models=MODELS, seeds=SEEDS), tmp_path / "design.toml")
    design = load_design(design_path)
    manifest, _ = write_placeholders(design, tmp_path / "images", size=16)
    entries = _tag_sources(manifest)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        media_root=tmp_path / "media",
        secret_key="k" * 32,
        researcher_token="t" * 32,
        **NO_ENROL_LIMIT,
    )
    with session_scope(settings.database_url) as s:
        launch_round(
            s,
            design_path=design_path,
            manifest_path=manifest,
            round_id="blind",
            media_root=settings.media_root,
            now=datetime.now(UTC),
        )
        tokens = set(s.exec(select(RoundImage.token)).all())
        stored = [Path(p).name for p in s.exec(select(RoundImage.path)).all()]

    forbidden: set[str] = set()
    for mid, label in MODELS:
        forbidden |= {mid, label}
    for e in entries:
        name = Path(e["file"]).name
        forbidden |= {str(e["seed"]), e["file"], name, Path(name).stem}
    for p in design.pages():
        forbidden.add(p.id)
    forbidden |= {name for name in stored}  # the media copies' own names are not for participants either

    with TestClient(create_app(settings)) as client:
        seen = []
        for c in design.cultures:
            for k in range(design.participants_needed(c.id)):
                params = {"PROLIFIC_PID": f"blind{c.id}{k}", "STUDY_ID": "s", "SESSION_ID": f"x{k}"}
                crawl = crawl_participant(client, "blind", c.id, params, seed=f"{c.id}{k}")
                assert crawl.pages > 0
                seen += crawl.seen

    served_tokens = {s.url.rsplit("/i/", 1)[-1] for s in seen if "/i/" in s.url and s.status == 200}
    with session_scope(settings.database_url) as s:
        secret = s.exec(select(Round.secret)).one()
        orders = {a.token: a.image_order for a in s.exec(select(Assignment)).all()}
    served = {image_of(secret, t, orders[t.split(".")[0]]) for t in served_tokens}
    assert len(served) == len(tokens) and None not in served  # every image of the round was fetched by someone
    leaks = []
    for s in seen:
        parts = {"url": s.url.encode(), "headers": json.dumps(s.headers).encode(), "body": s.body}
        for where, blob in parts.items():
            low = blob.lower()
            leaks += [f"{s.method} {s.url} {where}: {f!r}" for f in forbidden if f.lower().encode() in low]
        if "/i/" in s.url and s.status == 200:
            kinds = {k for k, _ in png_chunks(s.body)}
            assert not kinds & TEXT_CHUNKS, f"{s.url}: metadata chunks {kinds & TEXT_CHUNKS}"
            assert "filename" not in s.headers.get("content-disposition", "")
    assert leaks == []
