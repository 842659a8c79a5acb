"""Blinded serving (no model, label, file name or seed in HTML, URLs, headers or image bytes) and round launch."""

from __future__ import annotations

import hashlib
import io
import json
import re

from PIL import Image, PngImagePlugin
from sqlmodel import select

from app import rounds
from app.images import png_chunks, strip_png
from app.models import RoundImage
from study_designs.schema import load_design
from tests.factories import walk


def png_with_text(text: str, size: int = 8) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    info.add_itxt("Comment", text)
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (1, 2, 3)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def test_strip_png_removes_text_chunks_and_keeps_pixels():
    raw = png_with_text("model=scoft_mpc seed=11")
    assert b"scoft_mpc" in raw
    clean = strip_png(raw)
    assert b"scoft_mpc" not in clean
    assert {k for k, _ in png_chunks(clean)} <= {b"IHDR", b"IDAT", b"IEND", b"pHYs", b"sRGB", b"gAMA"}
    assert Image.open(io.BytesIO(clean)).getpixel((3, 3)) == (1, 2, 3)


def test_nothing_participant_facing_reveals_the_model(make_study, tmp_path):
    study = make_study("demo.toml", "demo")
    design = load_design(study.design_path)
    entries = [json.loads(line) for line in study.manifest.read_text().splitlines()]
    secrets_ = {m.id for m in design.models if len(m.id) > 3} | {m.label for m in design.models}
    secrets_ |= (
        {e["file"] for e in entries} | {e["file"].split("/")[-1] for e in entries} | {e["image_id"] for e in entries}
    )
    secrets_ |= {e["sha256"] for e in entries}
    w = walk(study.client, "/s/demo", culture="korea", record=True)
    html = "\n".join(s.text for s in w.seen if "html" in s.headers.get("content-type", ""))
    assert w.pages > 0 and "DEMO-DONE" in html
    for s in secrets_:
        assert s not in html, s
    assert not re.search(r"seed", html, re.I)
    tokens = set(re.findall(r'src="/i/([^"]+)"', html))
    assert tokens
    for t in tokens:
        r = study.client.get(f"/i/{t}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert "immutable" in r.headers["cache-control"] and "max-age" in r.headers["cache-control"]
        assert "content-disposition" not in r.headers
        assert r.headers["x-content-type-options"] == "nosniff"
        header_text = " ".join(f"{k}: {v}" for k, v in r.headers.items())
        body = r.content
        for s in secrets_:
            assert s not in header_text and s.encode() not in body
        assert {k for k, _ in png_chunks(body)} <= {b"IHDR", b"IDAT", b"IEND", b"PLTE", b"tRNS", b"pHYs", b"sRGB"}
    assert study.client.get("/i/unknown-token").status_code == 404


def test_security_headers_on_participant_pages(make_study):
    study = make_study("demo.toml", "demo")
    r = study.client.get("/s/demo", follow_redirects=True)
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in r.text and " style=" not in r.text and "onclick" not in r.text
    assert "server" not in r.headers


def test_stripped_copy_is_what_gets_served(make_study, monkeypatch):
    study = make_study("demo.toml", "demo")
    src = study.manifest.parent
    design = study.design_path
    entries = [json.loads(line) for line in study.manifest.read_text().splitlines()]
    target = src / entries[0]["file"]
    target.write_bytes(png_with_text("scoft_mpc secret", size=24))  # a page's images must share one size
    entries[0]["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    (src / "manifest2.jsonl").write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    monkeypatch.setenv("DATABASE_URL", study.settings.database_url)
    monkeypatch.setenv("MEDIA_ROOT", str(study.settings.media_root))
    monkeypatch.setenv("SECRET_KEY", "x")
    manifest2 = str(src / "manifest2.jsonl")
    assert rounds.main(["launch", "--design", str(design), "--manifest", manifest2, "--round", "blind"]) == 0
    with study.session() as s:
        img = s.exec(
            select(RoundImage).where(RoundImage.round_id == "blind", RoundImage.image_id == entries[0]["image_id"])
        ).one()
    body = (study.settings.media_root / img.path).read_bytes()  # the only bytes /i/ ever sends for this image
    assert b"scoft_mpc" not in body and body.startswith(b"\x89PNG")
